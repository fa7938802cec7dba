-- One evaluated question per row: its run's final answer and the grader's verdict (no grade, e.g. no
-- gold answer: not correct), in question file order.
-- Parameters: $run VARCHAR (generation run), $grader VARCHAR, $questions VARCHAR[] (question ids evaluated)
-- Output: question_id, trajectory_id, final_answer, correct, steps
SELECT t.question_id, t.trajectory_id, t.generated_answer AS final_answer,
       coalesce(g.correct, false) AS correct, t.steps
FROM trajectories t
LEFT JOIN grades g ON g.trajectory_id = t.trajectory_id AND g.grader = $grader
WHERE t.generation_run = $run
  AND list_contains($questions::VARCHAR[], t.question_id)
ORDER BY t.source_line, t.question_id
