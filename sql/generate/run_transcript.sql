-- The first question's first sample of a generation run, as stored, from the first assistant turn
-- (the system prompt and the task message left out).
-- Parameters: $run VARCHAR
-- Output: role, text, one row per message in order
SELECT m.role, m.text
FROM messages m
JOIN trajectories t USING (trajectory_id)
WHERE t.generation_run = $run
  AND t.sample_idx = 0
  AND t.source_line = (SELECT min(source_line) FROM trajectories WHERE generation_run = $run)
  AND m.position >= 2
ORDER BY m.position
