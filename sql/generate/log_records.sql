-- A data set's generated trajectories as the fields of agent-distillation log records
-- (`curate generate --log-out`), in question order (its place in the questions file), then sample.
-- Parameters: $dataset VARCHAR
-- Output: question_id, question, gold_answer, generated_answer, correct, teacher_model, sample_idx,
--         seed, steps, generated_tokens, stop_reason, first_thought, generation_run,
--         roles, texts (the raw messages in order)
WITH generated AS (
    SELECT * FROM trajectories WHERE dataset = $dataset AND generation_run IS NOT NULL
),
transcripts AS (
    SELECT m.trajectory_id,
           list(m.role ORDER BY m.position) AS roles,
           list(m.text ORDER BY m.position) AS texts
    FROM messages m
    JOIN generated g USING (trajectory_id)
    GROUP BY m.trajectory_id
)
SELECT g.question_id, q.text AS question, q.gold_answer, g.generated_answer, g.correct, g.teacher_model,
       g.sample_idx, g.seed, g.steps, g.generated_tokens, g.stop_reason, g.first_thought, g.generation_run,
       t.roles, t.texts
FROM generated g
JOIN questions q USING (dataset, question_id)
JOIN transcripts t USING (trajectory_id)
ORDER BY g.source_line, g.question_id, g.sample_idx
