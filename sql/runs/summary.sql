-- Per scoring run: what it scored and what it could not score whole.
-- Parameters: none
-- Output: run_id, student, trajectories, truncated (longer than max_length: scored over what
--         fits), no_turn_left (truncated with no assistant turn within max_length: no NLL, in no
--         selection or tertile), turn_by_turn (scored one pass per turn: scoring_runs.single_pass
--         false, or a token crossing a turn's end), max_length, finished_at
SELECT r.run_id, r.student,
       count(s.trajectory_id)                                          AS trajectories,
       count(*) FILTER (WHERE s.truncated)                             AS truncated,
       count(*) FILTER (WHERE s.truncated AND n.turns = 0)             AS no_turn_left,
       count(*) FILTER (WHERE s.fallback IS NOT NULL)                  AS turn_by_turn,
       r.max_length, r.finished_at
FROM scoring_runs r
LEFT JOIN trajectory_scores s USING (run_id)
LEFT JOIN trajectory_nll n USING (run_id, trajectory_id)
GROUP BY r.run_id, r.student, r.max_length, r.finished_at, r.started_at
ORDER BY r.started_at, r.run_id
