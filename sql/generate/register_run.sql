-- Record a generation run, or refresh it when the same settings run again (resume, a larger K or
-- --limit): started_at stays the first one; k, the questions file and the config are the latest.
-- Parameters: $run, $dataset, $questions_file, $model, $backend VARCHAR, $k INTEGER, $temperature,
--             $top_p DOUBLE, $max_steps, $max_new_tokens INTEGER, $seed BIGINT, $tools, $profile,
--             $prompt_hash, $system_prompt, $corpus, $corpus_hash, $retriever_url VARCHAR,
--             $first_thought_prefix BOOLEAN, $grader, $code_version VARCHAR, $config JSON, $started TIMESTAMP,
--             $first_sample INTEGER (where its samples start in the data set; kept from the first time)
-- Output: none
INSERT INTO generation_runs
    (generation_run, dataset, questions_file, model, backend, k, temperature, top_p, max_steps,
     max_new_tokens, base_seed, tools, profile, system_prompt_hash, system_prompt, corpus, corpus_hash,
     retriever_url, first_thought_prefix, grader, code_version, config, started_at, first_sample)
VALUES ($run, $dataset, $questions_file, $model, $backend, $k, $temperature, $top_p, $max_steps,
        $max_new_tokens, $seed, $tools, $profile, $prompt_hash, $system_prompt, $corpus, $corpus_hash,
        $retriever_url, $first_thought_prefix, $grader, $code_version, $config, $started, $first_sample)
ON CONFLICT (generation_run) DO UPDATE SET
    k = excluded.k,
    questions_file = excluded.questions_file,
    code_version = excluded.code_version,
    config = excluded.config,
    finished_at = NULL
