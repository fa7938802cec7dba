-- Per-bucket statistics of the NLL tertiles (the paper's Tables 7-9, plus confounds).
-- Parameters: $run_id VARCHAR (scoring run), $dataset VARCHAR (NULL: every data set),
--             $rule VARCHAR ('quantile' | 'rank'; see macros.sql), $by_model BOOLEAN
-- Output: one row per (dataset, teacher_model, scope, bucket), EASY/MEDIUM/HARD always present:
--   dataset, teacher_model ('(all)' unless $by_model), scope ('global' | 'per_question'),
--   bucket_idx (0 EASY .. 2 HARD), bucket,
--   n_traj      -- trajectories in the bucket
--   n_q         -- distinct questions among them
--   mean_nll    -- mean trajectory NLL
--   traj_chars  -- mean characters of assistant text
--   tool_calls  -- mean code actions per trajectory
--   acc         -- accuracy in percent
--   q_words     -- mean question words (per trajectory)
--   tokens      -- mean supervised tokens scored
--   repetition  -- mean share of repeated word 4-grams in assistant text (cached trajectories)
-- Needs sql/analysis/macros.sql loaded on the connection.
SELECT *
FROM bucket_stats($run_id, $dataset, $rule, $by_model)
ORDER BY dataset, teacher_model, scope, bucket_idx
