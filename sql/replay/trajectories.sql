-- The trajectories `curate replay` re-executes: one data set, some ids, or all.
-- Parameters: $dataset VARCHAR (NULL: every data set), $ids VARCHAR[] (NULL: every trajectory)
-- Output: trajectory_id, profile (its marker profile: how its actions and observations are read)
SELECT trajectory_id, profile
FROM trajectories
WHERE ($dataset IS NULL OR dataset = $dataset)
  AND ($ids IS NULL OR list_contains($ids, trajectory_id))
ORDER BY dataset, question_id, sample_idx, trajectory_id
