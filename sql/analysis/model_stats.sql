-- One row per teacher model: does the student's NLL track the teacher rather than learnability?
-- Parameters: $run_id VARCHAR (scoring run), $dataset VARCHAR (NULL: every data set)
-- Output: one row per (dataset, teacher_model):
--   dataset, teacher_model ('(unknown)' where the store has none),
--   n_traj, n_q, mean_nll,
--   acc         -- success rate in percent
--   traj_chars, tool_calls, tokens, repetition  -- means, as in bucket_stats.sql
-- Needs sql/analysis/macros.sql loaded on the connection.
SELECT dataset, teacher_model,
       count(*)                            AS n_traj,
       count(DISTINCT question_id)         AS n_q,
       avg(nll)                            AS mean_nll,
       100 * avg(CAST(correct AS INTEGER)) AS acc,
       avg(assistant_chars)                AS traj_chars,
       avg(tool_calls)                     AS tool_calls,
       avg(tokens)                         AS tokens,
       avg(repetition)                     AS repetition
FROM scored_pool($run_id, $dataset, true)
GROUP BY dataset, teacher_model
ORDER BY dataset, teacher_model
