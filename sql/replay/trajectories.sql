-- The trajectories `curate replay` re-executes: one data set, some ids, or all, less those already
-- replayed under the same settings (an interrupted replay resumes).
-- Parameters: $dataset VARCHAR (NULL: every data set), $ids VARCHAR[] (NULL: every trajectory),
--   $settings VARCHAR (NULL: replay again whatever was replayed before)
-- Output: trajectory_id, profile (its marker profile: how its actions and observations are read), done
--   (already replayed under $settings: skipped)
SELECT t.trajectory_id, t.profile, r.trajectory_id IS NOT NULL AS done
FROM trajectories t
LEFT JOIN replays r ON r.trajectory_id = t.trajectory_id AND r.settings = $settings
WHERE ($dataset IS NULL OR t.dataset = $dataset)
  AND ($ids IS NULL OR list_contains($ids, t.trajectory_id))
ORDER BY t.dataset, t.question_id, t.sample_idx, t.trajectory_id
