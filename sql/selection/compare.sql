-- Selections side by side on one store (`curate compare`, the report's selections table): what
-- each chose, how its choices stand on the paper's question (correct? in which NLL tertile?) and
-- on how many questions two of them chose the same trajectory.
-- Reads: the table `compared` that curate.compare registers, one row per (entry, question):
--        entry VARCHAR (a selection id or a policy's name), position INTEGER (its column order),
--        policy VARCHAR, run_id VARCHAR, dataset, question_id, trajectory_id (NULL: none chosen)
-- Needs: sql/analysis/macros.sql (tertile_buckets) on the connection.
-- Parameters: $scope VARCHAR ('per_question': a choice's NLL tertile among its question's scored
--             trajectories; 'global': among its data set's), $rule VARCHAR ('quantile' | 'rank')
-- Output: one row per entry, by position: entry, policy, run_id, questions, selected,
--         correct_pct, easy_pct, medium_pct, hard_pct (percent of the chosen trajectories),
--         mean_nll, mean_rsr, mean_ifd (under the entry's run), mean_assistant_chars,
--         mean_tool_calls, mean_turns,
--         same (a list by position: the questions on which it and that entry chose one and the
--         same trajectory; against itself, the questions it chose a trajectory for)
WITH runs AS (
    SELECT DISTINCT run_id FROM compared
),
buckets AS (
    -- every scored trajectory's tertile under each run: 0 EASY, 1 MEDIUM, 2 HARD
    SELECT r.run_id, b.trajectory_id, b.bucket_idx
    FROM runs r, LATERAL tertile_buckets(r.run_id, NULL, $rule, false) b
    WHERE b.scope = $scope
),
chosen AS (
    SELECT c.entry, c.position, c.policy, c.run_id, c.dataset, c.question_id, c.trajectory_id,
           t.correct, t.assistant_chars, t.tool_calls, t.assistant_turns,
           b.bucket_idx, n.nll, r.rsr, i.ifd
    FROM compared c
    LEFT JOIN trajectories t ON t.trajectory_id = c.trajectory_id
    LEFT JOIN buckets b ON b.run_id = c.run_id AND b.trajectory_id = c.trajectory_id
    LEFT JOIN trajectory_nll n ON n.run_id = c.run_id AND n.trajectory_id = c.trajectory_id
    LEFT JOIN trajectory_rsr r ON r.run_id = c.run_id AND r.trajectory_id = c.trajectory_id
    LEFT JOIN trajectory_ifd i ON i.run_id = c.run_id AND i.trajectory_id = c.trajectory_id
),
pairs AS (
    -- questions on which two entries chose one and the same trajectory
    SELECT x.entry, y.position AS other, count(*) AS same
    FROM chosen x
    JOIN chosen y ON y.dataset = x.dataset AND y.question_id = x.question_id AND y.trajectory_id = x.trajectory_id
    GROUP BY ALL
),
agreement AS (
    SELECT e.entry, list(coalesce(p.same, 0) ORDER BY o.position) AS same
    FROM (SELECT DISTINCT entry FROM compared) e
    CROSS JOIN (SELECT DISTINCT position FROM compared) o
    LEFT JOIN pairs p ON p.entry = e.entry AND p.other = o.position
    GROUP BY e.entry
),
per_entry AS (
    -- averages over the chosen trajectories (a question with none counts in questions only)
    SELECT entry,
           any_value(position)                              AS position,
           any_value(policy)                                AS policy,
           any_value(run_id)                                AS run_id,
           count(*)                                         AS questions,
           count(trajectory_id)                             AS selected,
           100 * avg(CAST(correct AS INTEGER))              AS correct_pct,
           100 * avg(CAST(bucket_idx = 0 AS INTEGER))       AS easy_pct,
           100 * avg(CAST(bucket_idx = 1 AS INTEGER))       AS medium_pct,
           100 * avg(CAST(bucket_idx = 2 AS INTEGER))       AS hard_pct,
           avg(nll)                                         AS mean_nll,
           avg(rsr)                                         AS mean_rsr,
           avg(ifd)                                         AS mean_ifd,
           avg(assistant_chars)                             AS mean_assistant_chars,
           avg(tool_calls)                                  AS mean_tool_calls,
           avg(assistant_turns)                             AS mean_turns
    FROM chosen
    GROUP BY entry
)
SELECT p.* EXCLUDE (position), a.same
FROM per_entry p
JOIN agreement a USING (entry)
ORDER BY p.position
