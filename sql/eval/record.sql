-- Record one benchmark of an eval run, or refresh it when the run is resumed or extended (a larger
-- --limit): started_at stays the first one; results, counts and settings are the latest.
-- Parameters: $eval_run, $benchmark, $dataset, $generation_run, $name, $model, $adapter, $adapter_hash,
--             $backend VARCHAR, $protocol JSON, $prompt_source, $prompt_hash, $grader, $questions_file
--             VARCHAR, $questions, $correct INTEGER, $pass_at_1 DOUBLE, $code_version VARCHAR,
--             $config JSON, $started, $finished TIMESTAMP
-- Output: none
INSERT INTO eval_runs
    (eval_run, benchmark, dataset, generation_run, name, model, adapter, adapter_hash, backend, protocol,
     system_prompt_source, system_prompt_hash, grader, questions_file, questions, correct, pass_at_1,
     code_version, config, started_at, finished_at)
VALUES ($eval_run, $benchmark, $dataset, $generation_run, $name, $model, $adapter, $adapter_hash, $backend,
        $protocol, $prompt_source, $prompt_hash, $grader, $questions_file, $questions, $correct, $pass_at_1,
        $code_version, $config, $started, $finished)
ON CONFLICT (eval_run, benchmark) DO UPDATE SET
    generation_run = excluded.generation_run,
    name = excluded.name,
    adapter = excluded.adapter,
    system_prompt_source = excluded.system_prompt_source,
    grader = excluded.grader,
    questions_file = excluded.questions_file,
    questions = excluded.questions,
    correct = excluded.correct,
    pass_at_1 = excluded.pass_at_1,
    code_version = excluded.code_version,
    config = excluded.config,
    finished_at = excluded.finished_at
