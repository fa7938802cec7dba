-- What the clean rule needs besides the verdict, for a list of trajectories.
-- Params: $ids (list of trajectory ids). Output: trajectory_id, has_messages, parse_error, max_steps.
SELECT
    t.trajectory_id,
    EXISTS (SELECT 1 FROM messages m WHERE m.trajectory_id = t.trajectory_id) AS has_messages,
    t.parse_error,
    t.max_steps
FROM trajectories t
WHERE t.trajectory_id IN (SELECT unnest($ids::VARCHAR[]));
