-- Refresh a scoring run's counts; stamp finished_at when nothing it was asked to score is left.
-- Parameters: $run_id VARCHAR, $complete BOOLEAN, $now TIMESTAMP
-- Output: none
UPDATE scoring_runs
SET trajectories = (SELECT count(*) FROM trajectory_scores WHERE run_id = $run_id),
    tokens       = (SELECT coalesce(sum(tokens), 0) FROM trajectory_scores WHERE run_id = $run_id),
    finished_at  = CASE WHEN $complete THEN $now ELSE finished_at END
WHERE run_id = $run_id
