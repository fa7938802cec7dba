-- Audit: a selection row whose chosen trajectory is missing from the store, answers another
-- question, or lies outside the selection's data set. Must return no rows.
-- Parameters: none
-- Output: selection_id, dataset, question_id, trajectory_id, problem
WITH chosen AS (
    SELECT r.selection_id, r.dataset, r.question_id, r.trajectory_id,
           s.dataset AS selection_dataset,
           t.trajectory_id IS NOT NULL AS stored,
           -- the trajectory's own question, to compare with the row's
           t.dataset AS t_dataset, t.question_id AS t_question_id
    FROM selection_rows r
    JOIN selections s USING (selection_id)
    LEFT JOIN trajectories t USING (trajectory_id)
    WHERE r.trajectory_id IS NOT NULL
)
SELECT selection_id, dataset, question_id, trajectory_id,
       CASE WHEN NOT stored THEN 'chosen trajectory is not in the store'
            WHEN t_dataset <> dataset OR t_question_id <> question_id THEN 'chosen trajectory answers another question'
            ELSE 'row outside the selection''s data set'
       END AS problem
FROM chosen
WHERE NOT stored
   OR t_dataset <> dataset OR t_question_id <> question_id
   OR (selection_dataset IS NOT NULL AND dataset <> selection_dataset)
