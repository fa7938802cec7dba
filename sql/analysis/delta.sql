-- Delta(HARD - EASY) of every bucket statistic: how the hardest NLL tertile differs from the easiest.
-- Parameters: $run_id VARCHAR (scoring run), $dataset VARCHAR (NULL: every data set),
--             $rule VARCHAR ('quantile' | 'rank'; see macros.sql), $by_model BOOLEAN
-- Output: one row per (dataset, teacher_model, scope, metric):
--   dataset, teacher_model, scope,
--   metric  -- mean_nll | traj_chars | tool_calls | acc | q_words | tokens | repetition
--   easy, hard  -- the statistic in the EASY and HARD buckets (NULL where a bucket is empty)
--   delta       -- hard - easy (accuracy: percentage points)
-- Needs sql/analysis/macros.sql loaded on the connection.
WITH stats AS (
    SELECT * FROM bucket_stats($run_id, $dataset, $rule, $by_model)
),
long AS (
    UNPIVOT stats
    ON mean_nll, traj_chars, tool_calls, acc, q_words, tokens, repetition
    INTO NAME metric VALUE value
),
paired AS (
    SELECT dataset, teacher_model, scope, metric,
           any_value(value) FILTER (WHERE bucket = 'EASY') AS easy,
           any_value(value) FILTER (WHERE bucket = 'HARD') AS hard
    FROM long
    GROUP BY dataset, teacher_model, scope, metric
)
SELECT dataset, teacher_model, scope, metric, easy, hard,
       hard - easy AS delta
FROM paired
ORDER BY dataset, teacher_model, scope,
         list_position(['mean_nll', 'traj_chars', 'tool_calls', 'acc', 'q_words', 'tokens', 'repetition'], metric)
