-- Store replay outcomes; a trajectory replayed again keeps only its latest outcome.
-- Parameters: none; reads the registered relation new_replays
--   (trajectory_id, steps, reproduced, first_mismatch, reason)
-- Output: none
INSERT OR REPLACE INTO replays
SELECT trajectory_id, steps, reproduced, first_mismatch, reason,
       now() AS replayed_at
FROM new_replays
