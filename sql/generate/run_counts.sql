-- What a generation run's trajectories hold: counts, flags and generated tokens.
-- Parameters: $run VARCHAR
-- Output: trajectories, correct, clean, parse_error, max_steps, exec_error, tokens
SELECT count(*)                                   AS trajectories,
       count(*) FILTER (WHERE correct)            AS correct,
       count(*) FILTER (WHERE clean)              AS clean,
       count(*) FILTER (WHERE parse_error)        AS parse_error,
       count(*) FILTER (WHERE max_steps)          AS max_steps,
       count(*) FILTER (WHERE exec_error)         AS exec_error,
       coalesce(sum(generated_tokens), 0)::BIGINT AS tokens
FROM trajectories
WHERE generation_run = $run
