-- Audit: a selection row whose chosen trajectory is not clean (incorrect, parse error, max
-- steps, or no messages). Only clean trajectories may be selected. Must return no rows.
-- Parameters: none
-- Output: selection_id, dataset, question_id, trajectory_id, problem
SELECT r.selection_id, r.dataset, r.question_id, r.trajectory_id,
       'chosen trajectory is not clean' AS problem
FROM selection_rows r
JOIN trajectories t USING (trajectory_id)
WHERE NOT t.clean
