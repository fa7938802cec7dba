-- One line per trajectory of a generation run: what each sample did and how it was graded.
-- Parameters: $run VARCHAR
-- Output: question (id, first 12 characters), sample, steps, stop (stop_reason), tokens (generated),
--         answer (first 30 characters), gold (first 20), correct, clean,
--         flags (parse_error / max_steps / exec_error that are set, comma-separated)
SELECT left(t.question_id, 12)                               AS question,
       t.sample_idx                                          AS sample,
       t.steps,
       t.stop_reason                                         AS stop,
       t.generated_tokens                                    AS tokens,
       left(regexp_replace(t.generated_answer, '\s+', ' ', 'g'), 30) AS answer,
       left(q.gold_answer, 20)                               AS gold,
       t.correct,
       t.clean,
       concat_ws(',', CASE WHEN t.parse_error THEN 'parse_error' END,
                      CASE WHEN t.max_steps THEN 'max_steps' END,
                      CASE WHEN t.exec_error THEN 'exec_error' END) AS flags
FROM trajectories t
JOIN questions q USING (dataset, question_id)
WHERE t.generation_run = $run
ORDER BY t.source_line, t.sample_idx
