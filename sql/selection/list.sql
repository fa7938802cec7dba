-- Stored selections, newest first, with their counts.
-- Parameters: $selection_id VARCHAR (NULL: every selection)
-- Output: selection_id, policy, run_id, student, dataset, k, seed, questions, selected,
--         no_candidate, created_at
WITH counts AS (
    SELECT selection_id,
           count(*)                                        AS questions,
           -- questions that got a trajectory
           count(trajectory_id)                            AS selected,
           -- questions reported with a reason instead of a trajectory
           count(*) FILTER (WHERE trajectory_id IS NULL)   AS no_candidate
    FROM selection_rows
    GROUP BY selection_id
)
SELECT s.selection_id, s.policy, s.run_id, r.student, s.dataset, s.k, s.seed,
       coalesce(c.questions, 0) AS questions,
       coalesce(c.selected, 0) AS selected,
       coalesce(c.no_candidate, 0) AS no_candidate,
       s.created_at
FROM selections s
LEFT JOIN counts c USING (selection_id)
LEFT JOIN scoring_runs r USING (run_id)
WHERE $selection_id IS NULL OR s.selection_id = $selection_id
ORDER BY s.created_at DESC, s.selection_id
