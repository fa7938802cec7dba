-- Per data set counts after grading: trajectories, correct, clean, without a gold answer, and how
-- often the grader agrees with the verdict the logs came with (grader 'source').
-- Params: $dataset, $grader, $source (the logs' own grader name: source).
-- Output: trajectories, correct, clean, no_gold, with_source, agree_source.
WITH t AS (
    SELECT t.trajectory_id, t.correct, t.clean, nullif(trim(q.gold_answer), '') IS NULL AS no_gold
    FROM trajectories t
    JOIN questions q USING (dataset, question_id)
    WHERE t.dataset = $dataset
),
paired AS (
    SELECT s.correct AS source, g.correct AS graded
    FROM grades s
    JOIN grades g USING (trajectory_id)
    JOIN t USING (trajectory_id)
    WHERE s.grader = $source AND g.grader = $grader
)
SELECT
    (SELECT count(*) FROM t)::INTEGER AS trajectories,
    (SELECT count_if(correct) FROM t)::INTEGER AS correct,
    (SELECT count_if(clean) FROM t)::INTEGER AS clean,
    (SELECT count_if(no_gold) FROM t)::INTEGER AS no_gold,
    (SELECT count(*) FROM paired)::INTEGER AS with_source,
    (SELECT count_if(source = graded) FROM paired)::INTEGER AS agree_source;
