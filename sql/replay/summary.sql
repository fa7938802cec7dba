-- Per data set: how many replayed code steps reproduced their stored observation.
-- Parameters: $dataset VARCHAR (NULL: every data set), $ids VARCHAR[] (NULL: every trajectory)
-- Output: dataset, trajectories (replayed), steps, reproduced, share (reproduced / steps, NULL
--   without steps), complete (trajectories whose every step reproduced), no_steps (trajectories
--   without a code step that has a stored observation)
WITH replayed AS (
    SELECT t.dataset, r.*
    FROM replays r
    JOIN trajectories t USING (trajectory_id)
    WHERE ($dataset IS NULL OR t.dataset = $dataset)
      AND ($ids IS NULL OR list_contains($ids, r.trajectory_id))
)
SELECT dataset,
       count(*)                                             AS trajectories,
       sum(steps)::BIGINT                                   AS steps,
       sum(reproduced)::BIGINT                              AS reproduced,
       sum(reproduced) / nullif(sum(steps), 0)              AS share,
       count(*) FILTER (WHERE steps > 0 AND first_mismatch IS NULL) AS complete,
       count(*) FILTER (WHERE steps = 0)                    AS no_steps
FROM replayed
GROUP BY dataset
ORDER BY dataset
