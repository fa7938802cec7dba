-- Take the per-trajectory facts of parquet parts into trajectory_scores; rows already there are kept.
-- Parameters: $run_id VARCHAR, $files VARCHAR[] (complete part files of that run)
-- Output: none
INSERT INTO trajectory_scores (run_id, trajectory_id, tokens, truncated, fallback, sequence_hash)
SELECT DISTINCT ON (trajectory_id)
       $run_id AS run_id, trajectory_id,
       traj_tokens AS tokens,   -- supervised tokens scored (within max_length)
       truncated,
       fallback,                -- why it was scored turn by turn; NULL: one pass
       sequence_hash            -- hash of the token sequences it was scored from
FROM read_parquet($files)
ON CONFLICT DO NOTHING
