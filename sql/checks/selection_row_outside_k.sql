-- Audit: a selection row whose chosen trajectory has sample_idx >= the selection's K.
-- Must return no rows.
-- Parameters: none
-- Output: selection_id, dataset, question_id, trajectory_id, problem
SELECT r.selection_id, r.dataset, r.question_id, r.trajectory_id,
       'chosen sample_idx ' || t.sample_idx || ' is not below k = ' || s.k AS problem
FROM selection_rows r
JOIN selections s USING (selection_id)
JOIN trajectories t USING (trajectory_id)
WHERE s.k IS NOT NULL AND t.sample_idx >= s.k
