-- Tertile buckets of every scored trajectory, for both scopes (global and per-question).
-- Parameters: $run_id VARCHAR (scoring run), $dataset VARCHAR (NULL: every data set),
--             $rule VARCHAR ('quantile' | 'rank'; see macros.sql), $by_model BOOLEAN
-- Output: one row per (scope, trajectory): dataset, teacher_model ('(all)' unless $by_model),
--         scope, question_id, trajectory_id, sample_idx, nll, nll_rank, n, bucket_idx, bucket,
--         correct, tokens, assistant_chars, tool_calls, q_words, repetition
-- Needs sql/analysis/macros.sql loaded on the connection.
SELECT dataset, teacher_model, scope, question_id, trajectory_id, sample_idx, nll, nll_rank, n,
       bucket_idx, bucket, correct, tokens, assistant_chars, tool_calls, q_words, repetition
FROM tertile_buckets($run_id, $dataset, $rule, $by_model)
ORDER BY dataset, teacher_model, scope, question_id, nll_rank
