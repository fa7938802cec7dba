-- Within-question rank correlation of NLL with correctness: does a question's higher-NLL
-- trajectory tend to be the correct one (rho > 0) or the wrong one (rho < 0)?
-- Parameters: $run_id VARCHAR (scoring run), $dataset VARCHAR (NULL: every data set),
--             $by_model BOOLEAN (true: questions are split by teacher model as well)
-- Output: one row per (dataset, teacher_model):
--   dataset, teacher_model ('(all)' unless $by_model),
--   questions  -- questions with scored trajectories
--   mixed_q    -- of them, with both correct and incorrect trajectories
--   rho_q      -- of those, with a defined Spearman rho (their NLLs are not all equal)
--   mean_rho   -- mean Spearman rho over the rho_q questions (NULL if none)
-- Spearman rho is the Pearson correlation of average ranks (ties share the mean of their positions).
-- Needs sql/analysis/macros.sql loaded on the connection.
WITH pool AS (
    SELECT * FROM scored_pool($run_id, $dataset, $by_model)
),
ranked AS (
    SELECT dataset, teacher_model, question_id, correct,
           -- average rank of nll: first position of its tie group plus half the group's extra size
           rank() OVER (PARTITION BY dataset, teacher_model, question_id ORDER BY nll)
             + (count(*) OVER (PARTITION BY dataset, teacher_model, question_id, nll) - 1) / 2 AS nll_r,
           -- average rank of correct (false before true)
           rank() OVER (PARTITION BY dataset, teacher_model, question_id ORDER BY correct)
             + (count(*) OVER (PARTITION BY dataset, teacher_model, question_id, correct) - 1) / 2 AS correct_r
    FROM pool
),
per_question AS (
    SELECT dataset, teacher_model, question_id,
           -- both outcomes present
           bool_or(correct) AND NOT bool_and(correct) AS mixed,
           -- NaN when the NLL ranks do not vary
           corr(nll_r, correct_r) AS rho
    FROM ranked
    GROUP BY dataset, teacher_model, question_id
)
SELECT dataset, teacher_model,
       count(*) AS questions,
       count(*) FILTER (WHERE mixed) AS mixed_q,
       count(*) FILTER (WHERE mixed AND NOT isnan(rho)) AS rho_q,
       avg(rho) FILTER (WHERE mixed AND NOT isnan(rho)) AS mean_rho
FROM per_question
GROUP BY dataset, teacher_model
ORDER BY dataset, teacher_model
