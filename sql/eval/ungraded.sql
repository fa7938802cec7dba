-- The trajectories of an evaluation's generation run that a grader has not graded yet (the run was
-- generated under another grader, e.g. qa, and is now evaluated with an LLM judge).
-- Parameters: $run VARCHAR (generation run), $grader VARCHAR (as recorded: math | qa | judge:<model>),
--             $questions VARCHAR[] (the question ids evaluated)
-- Output: trajectory_id, question, gold_answer, generated_answer
SELECT t.trajectory_id, q.text AS question, q.gold_answer, t.generated_answer
FROM trajectories t
JOIN questions q USING (dataset, question_id)
WHERE t.generation_run = $run
  AND list_contains($questions::VARCHAR[], t.question_id)
  AND q.gold_answer IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM grades g WHERE g.trajectory_id = t.trajectory_id AND g.grader = $grader)
ORDER BY t.source_line
