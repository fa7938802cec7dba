-- Clean trajectories within a selection's K that its scoring run did not score: they were not
-- candidates, so a run that stopped early narrows every policy's choice.
-- Parameters: $selection_id VARCHAR
-- Output: unscored (one row)
SELECT count(*) AS unscored
FROM selections s
JOIN trajectories t ON (s.dataset IS NULL OR t.dataset = s.dataset) AND (s.k IS NULL OR t.sample_idx < s.k)
ANTI JOIN trajectory_nll n ON n.run_id = s.run_id AND n.trajectory_id = t.trajectory_id
WHERE s.selection_id = $selection_id AND t.clean
