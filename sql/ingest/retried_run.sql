-- Update an ingest run after a retry of its rejected lines took some of them in: add what the retry
-- added, recount the rejects and the file's distinct questions, store the options with the retry log.
-- Parameters: $ingest_id INTEGER, $trajectories, $failed_runs, $correct, $clean, $parse_error,
--   $max_steps, $exec_error INTEGER (what the retry added), $options VARCHAR (JSON text)
-- Output: none
UPDATE ingest_runs
SET trajectories = trajectories + $trajectories,
    failed_runs  = failed_runs + $failed_runs,
    correct      = correct + $correct,
    clean        = clean + $clean,
    parse_error  = parse_error + $parse_error,
    max_steps    = max_steps + $max_steps,
    exec_error   = exec_error + $exec_error,
    rejects      = (SELECT count(*) FROM ingest_rejects WHERE ingest_id = $ingest_id),
    -- the questions of the file: those of its trajectories and of its failed runs
    questions    = (SELECT count(DISTINCT question_id) FROM (
                       SELECT question_id FROM trajectories WHERE ingest_id = $ingest_id
                       UNION ALL
                       SELECT question_id FROM failed_runs WHERE ingest_id = $ingest_id)),
    options      = $options::JSON
WHERE ingest_id = $ingest_id
