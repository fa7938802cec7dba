-- The raw messages of some trajectories, in log order.
-- Parameters: $ids VARCHAR[]
-- Output: trajectory_id, norm_role, text
SELECT trajectory_id, norm_role, text
FROM messages
WHERE trajectory_id IN (SELECT unnest($ids))
ORDER BY trajectory_id, position
