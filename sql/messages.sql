-- Raw messages of the given trajectories, in log order, for rendering.
-- Parameters: $ids VARCHAR[] (trajectory ids)
-- Output: trajectory_id, roles VARCHAR[] (normalised), texts VARCHAR[]
SELECT trajectory_id,
       list(norm_role ORDER BY position) AS roles,
       list(text ORDER BY position)      AS texts
FROM messages
WHERE trajectory_id IN (SELECT unnest($ids))
GROUP BY trajectory_id
