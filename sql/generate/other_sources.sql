-- What else fills a data set besides one generation run: other runs, or ingested logs (NULL).
-- Parameters: $dataset VARCHAR, $run VARCHAR
-- Output: generation_run (NULL: trajectories ingested from logs)
SELECT DISTINCT generation_run
FROM trajectories
WHERE dataset = $dataset
  AND generation_run IS DISTINCT FROM $run
ORDER BY 1 NULLS FIRST
