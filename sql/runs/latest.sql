-- The latest finished scoring run of one student.
-- Parameters: $student VARCHAR (as recorded by curate score: built-in name or absolute path)
-- Output: run_id (zero or one row)
SELECT run_id
FROM scoring_runs
WHERE student = $student AND finished_at IS NOT NULL
ORDER BY finished_at DESC, run_id DESC
LIMIT 1
