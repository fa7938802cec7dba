-- Start a grading run on one data set; returns its id.
-- Params: $dataset, $grader, $requested, $options (JSON text), $code_version.
INSERT INTO grading_runs BY NAME
SELECT
    (SELECT coalesce(max(grading_run), 0) + 1 FROM grading_runs) AS grading_run,
    $dataset AS dataset, $grader AS grader, $requested AS requested, $options::JSON AS options,
    $code_version AS code_version, now()::TIMESTAMP AS started_at
RETURNING grading_run;
