-- Keep the verdict an ingested log came with (smolagents `score`, MINT `state.success`, ...) as grader
-- 'source' before a grader overwrites trajectories.correct. graded_by IS NULL means correct still holds
-- the log's verdict; trajectories that no ingest run wrote (generated ones) have no such verdict.
-- Params: $dataset, $source (the grader name: source). Idempotent: a trajectory with a source grade keeps it.
INSERT INTO grades BY NAME
SELECT
    t.trajectory_id,
    $source AS grader,
    t.correct,
    t.correct::DOUBLE AS score,
    -- the field the verdict was read from, as the ingest run recorded it
    'the verdict the log came with (' || coalesce(json_extract_string(r.options, '$.spec.correct'), '?') || ')'
        AS explanation
FROM trajectories t
JOIN ingest_runs r USING (ingest_id)
WHERE t.dataset = $dataset AND t.graded_by IS NULL
ON CONFLICT DO NOTHING;
