-- A grader's verdicts that trajectories of one data set do not hold yet: graded earlier (a killed
-- run, or before another grader ran), to be set again when this grader's run finishes.
-- Params: $dataset, $grader. Output: trajectory_id, correct.
SELECT g.trajectory_id, g.correct
FROM grades g
JOIN trajectories t USING (trajectory_id)
WHERE t.dataset = $dataset AND g.grader = $grader
  AND (t.graded_by IS DISTINCT FROM $grader OR t.correct <> g.correct)
ORDER BY g.trajectory_id;
