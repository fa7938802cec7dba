-- The stored per-turn scores of the given trajectories in one run (the viewer shows them beside
-- the per-token NLL it recomputes).
-- Parameters: $run_id VARCHAR, $ids VARCHAR[] (trajectory ids)
-- Output: trajectory_id, turn, tokens, nll_mean
SELECT trajectory_id, turn, tokens, nll_mean
FROM turn_scores
WHERE run_id = $run_id AND trajectory_id IN (SELECT unnest($ids))
ORDER BY trajectory_id, turn
