-- Store replay outcomes; a trajectory replayed again keeps only its latest outcome.
-- Parameters: $settings VARCHAR (the replay's settings hash); reads the registered relation new_replays
--   (trajectory_id, steps, reproduced, first_mismatch, reason)
-- Output: none
INSERT OR REPLACE INTO replays (trajectory_id, steps, reproduced, first_mismatch, reason, replayed_at, settings)
SELECT trajectory_id, steps, reproduced, first_mismatch, reason,
       now() AS replayed_at, $settings AS settings
FROM new_replays
