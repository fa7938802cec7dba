-- Per data set: what the store holds and how clean it is.
-- Parameters: none
-- Output: dataset, questions, trajectories, failed_runs, correct, clean, parse_error, max_steps,
--         exec_error, assistant_turns, tool_calls (sums over trajectories), rejects,
--         correct_pct, clean_pct, mean_turns, mean_tool_calls (null where a set has no trajectories)
WITH datasets AS (
    SELECT dataset FROM questions
    UNION SELECT dataset FROM trajectories
    UNION SELECT dataset FROM ingest_runs
),
per_question AS (
    SELECT dataset, count(*) AS questions FROM questions GROUP BY dataset
),
per_trajectory AS (
    SELECT dataset,
           count(*)                               AS trajectories,
           count(*) FILTER (WHERE correct)        AS correct,
           count(*) FILTER (WHERE clean)          AS clean,
           count(*) FILTER (WHERE parse_error)    AS parse_error,
           count(*) FILTER (WHERE max_steps)      AS max_steps,
           count(*) FILTER (WHERE exec_error)     AS exec_error,
           sum(assistant_turns)::BIGINT           AS assistant_turns,
           sum(tool_calls)::BIGINT                AS tool_calls
    FROM trajectories
    GROUP BY dataset
),
per_failed AS (
    SELECT dataset, count(*) AS failed_runs FROM failed_runs GROUP BY dataset
),
per_reject AS (
    -- rejects belong to the data set their file was ingested into
    SELECT i.dataset, count(*) AS rejects
    FROM ingest_rejects r
    JOIN ingest_runs i USING (ingest_id)
    GROUP BY i.dataset
),
counts AS (
    SELECT d.dataset,
           coalesce(q.questions, 0)        AS questions,
           coalesce(t.trajectories, 0)     AS trajectories,
           coalesce(f.failed_runs, 0)      AS failed_runs,
           coalesce(t.correct, 0)          AS correct,
           coalesce(t.clean, 0)            AS clean,
           coalesce(t.parse_error, 0)      AS parse_error,
           coalesce(t.max_steps, 0)        AS max_steps,
           coalesce(t.exec_error, 0)       AS exec_error,
           coalesce(t.assistant_turns, 0)  AS assistant_turns,
           coalesce(t.tool_calls, 0)       AS tool_calls,
           coalesce(r.rejects, 0)          AS rejects
    FROM datasets d
    LEFT JOIN per_question q USING (dataset)
    LEFT JOIN per_trajectory t USING (dataset)
    LEFT JOIN per_failed f USING (dataset)
    LEFT JOIN per_reject r USING (dataset)
)
SELECT *,
       -- shares of trajectories, in percent
       round(100.0 * correct / nullif(trajectories, 0), 1)        AS correct_pct,
       round(100.0 * clean / nullif(trajectories, 0), 1)          AS clean_pct,
       -- per-trajectory means
       round(assistant_turns / nullif(trajectories, 0), 2)        AS mean_turns,
       round(tool_calls / nullif(trajectories, 0), 2)             AS mean_tool_calls
FROM counts
ORDER BY dataset
