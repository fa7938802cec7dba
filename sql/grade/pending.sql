-- Trajectories of one data set that a grader still has to grade.
-- Params: $dataset, $grader (resolved name, e.g. math or judge:<model>), $regrade (true: all of them).
-- Output: trajectory_id, question, gold_answer, generated_answer; only questions with a gold answer
-- (the others are left as they were and counted by sql/grade/counts.sql).
WITH with_gold AS (
    SELECT t.trajectory_id, q.text AS question, q.gold_answer, t.generated_answer
    FROM trajectories t
    JOIN questions q USING (dataset, question_id)
    WHERE t.dataset = $dataset AND nullif(trim(q.gold_answer), '') IS NOT NULL
)
SELECT *
FROM with_gold w
WHERE $regrade
   OR NOT EXISTS (SELECT 1 FROM grades g WHERE g.trajectory_id = w.trajectory_id AND g.grader = $grader)
ORDER BY trajectory_id;
