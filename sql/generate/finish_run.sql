-- Stamp a generation run finished and store its counts (from generate/run_counts).
-- Parameters: $run VARCHAR, $now TIMESTAMP, $seconds DOUBLE (this invocation's generation time),
--             $trajectories, $correct, $clean INTEGER, $tokens BIGINT
-- Output: none
UPDATE generation_runs
SET finished_at  = $now,
    seconds      = coalesce(seconds, 0) + $seconds,
    trajectories = $trajectories,
    correct      = $correct,
    clean        = $clean,
    tokens       = $tokens
WHERE generation_run = $run
