-- Trajectory ids, grouped by question: all, one data set, given ids, or those a scoring run lacks.
-- Parameters: $dataset VARCHAR (NULL: every data set), $ids VARCHAR[] (NULL: every id),
--             $unscored_in VARCHAR (a run id: only trajectories without a score row in it; NULL: all)
-- Output: trajectory_id, dataset, question_id, sample_idx
--   Ordered by data set, question and sample, so the samples of a question are scored together
--   (they share a prefix, and a repeated sample is scored once).
SELECT t.trajectory_id, t.dataset, t.question_id, t.sample_idx
FROM trajectories t
WHERE ($dataset IS NULL OR t.dataset = $dataset)
  AND ($ids IS NULL OR t.trajectory_id IN (SELECT unnest($ids)))
  AND NOT EXISTS (
      SELECT 1 FROM trajectory_scores s
      WHERE s.run_id = $unscored_in AND s.trajectory_id = t.trajectory_id
  )
ORDER BY t.dataset, t.question_id, t.sample_idx, t.trajectory_id
