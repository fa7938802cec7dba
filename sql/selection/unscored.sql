-- Clean trajectories within a selection's K that have no NLL in its scoring run (not scored, or
-- no turn within its max_length): they were not candidates, so they narrow every policy's choice.
-- Parameters: $selection_id VARCHAR
-- Output: unscored (one row)
SELECT count(*) AS unscored
FROM selections s
JOIN trajectories t ON (s.dataset IS NULL OR t.dataset = s.dataset) AND (s.k IS NULL OR t.sample_idx < s.k)
ANTI JOIN trajectory_nll n ON n.run_id = s.run_id AND n.trajectory_id = t.trajectory_id AND n.nll IS NOT NULL
WHERE s.selection_id = $selection_id AND t.clean
