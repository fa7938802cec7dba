-- The benchmarks of eval runs, for Table 2: every run in the store, or the ones named (by id or name).
-- Parameters: $runs VARCHAR[] (eval run ids or names; empty: every run)
-- Output: eval_run, name, benchmark, questions, correct, pass_at_1, grader, model, adapter, adapter_hash,
--         system_prompt_source, protocol (as text); rows in the order the runs started
SELECT eval_run, name, benchmark, questions, correct, pass_at_1, grader, model, adapter, adapter_hash,
       system_prompt_source, protocol::VARCHAR AS protocol
FROM eval_runs
WHERE len($runs::VARCHAR[]) = 0 OR list_contains($runs::VARCHAR[], eval_run) OR list_contains($runs::VARCHAR[], name)
ORDER BY min(started_at) OVER (PARTITION BY eval_run), eval_run, benchmark
