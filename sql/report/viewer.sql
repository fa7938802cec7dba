-- The trajectories the report's viewer carries: per data set, $n questions that have at least one
-- trajectory scored in the run, drawn in a seeded hash order, with every sample of each.
-- Parameters: $run_id VARCHAR, $n INTEGER (questions per data set), $seed INTEGER
-- Output: one row per trajectory of the drawn questions, by data set, question and sample:
--         dataset, question_id, question, gold_answer, trajectory_id, sample_idx, teacher_model,
--         correct, clean, parse_error, max_steps, exec_error, assistant_turns, tool_calls,
--         assistant_chars, profile, nll (NULL: not scored in the run), tokens, truncated,
--         rank (1 = lowest NLL among the question's scored samples; NULL: not scored)
WITH scored_questions AS (
    SELECT DISTINCT t.dataset, t.question_id
    FROM trajectory_scores s
    JOIN trajectories t USING (trajectory_id)
    WHERE s.run_id = $run_id
),
drawn AS (
    SELECT dataset, question_id
    FROM scored_questions
    -- a hash of id and seed orders the questions: the same store and seed draw the same ones
    QUALIFY row_number() OVER (PARTITION BY dataset
                               ORDER BY md5(question_id || ':' || $seed), question_id) <= $n
),
samples AS (
    SELECT t.*
    FROM trajectories t
    SEMI JOIN drawn USING (dataset, question_id)
),
nll AS (
    -- the trajectory_nll view's number (macro average of turn means), for these samples only
    SELECT trajectory_id, fsum(nll_mean) / count(*) AS nll
    FROM turn_scores
    WHERE run_id = $run_id AND trajectory_id IN (SELECT trajectory_id FROM samples)
    GROUP BY trajectory_id
)
SELECT s.dataset, s.question_id, q.text AS question, q.gold_answer, s.trajectory_id, s.sample_idx,
       s.teacher_model, s.correct, s.clean, s.parse_error, s.max_steps, s.exec_error,
       s.assistant_turns, s.tool_calls, s.assistant_chars, s.profile,
       n.nll, ts.tokens, ts.truncated,
       -- equal NLLs go to the earlier sample, as in the selection policies
       CASE WHEN n.nll IS NOT NULL THEN
           row_number() OVER (PARTITION BY s.dataset, s.question_id, n.nll IS NULL
                              ORDER BY n.nll, s.sample_idx, s.trajectory_id)
       END AS rank
FROM samples s
JOIN questions q USING (dataset, question_id)
LEFT JOIN nll n USING (trajectory_id)
LEFT JOIN trajectory_scores ts ON ts.run_id = $run_id AND ts.trajectory_id = s.trajectory_id
ORDER BY s.dataset, s.question_id, s.sample_idx, s.trajectory_id
