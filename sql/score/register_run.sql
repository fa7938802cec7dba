-- Record a scoring run (first take-in only; a resumed run keeps its first row).
-- Parameters: $run_id, $student, $weights_hash, $tokenizer_hash, $backend, $dtype VARCHAR,
--             $max_length INTEGER, $single_pass BOOLEAN, $code_version VARCHAR, $config JSON,
--             $started_at TIMESTAMP
-- Output: none
INSERT INTO scoring_runs
    (run_id, student, weights_hash, tokenizer_hash, backend, dtype, max_length, single_pass,
     code_version, config, started_at)
VALUES ($run_id, $student, $weights_hash, $tokenizer_hash, $backend, $dtype, $max_length,
        $single_pass, $code_version, $config, $started_at)
ON CONFLICT DO NOTHING
