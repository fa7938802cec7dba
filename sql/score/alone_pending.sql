-- The trajectories IFD's alone pass has still to score in a run (`curate score --ifd`): one per
-- token sequence (sequence_hash) with a scored turn and no alone rows yet, the lowest trajectory id
-- of each. Identical samples share their sequence, so they share its alone rows too.
-- Parameters: $run_id VARCHAR, $dataset VARCHAR (NULL: every data set)
-- Output: trajectory_id, dataset, question_id; grouped by question, as score/trajectory_ids
WITH scored AS (
    -- trajectories of the run with at least one scored turn (the others have nothing alone to score)
    SELECT DISTINCT trajectory_id
    FROM turn_scores
    WHERE run_id = $run_id
),
sequences AS (
    SELECT s.sequence_hash, min(s.trajectory_id) AS trajectory_id
    FROM trajectory_scores s
    JOIN scored USING (trajectory_id)
    JOIN trajectories t USING (trajectory_id)
    WHERE s.run_id = $run_id
      AND ($dataset IS NULL OR t.dataset = $dataset)
      AND NOT EXISTS (
          SELECT 1 FROM turn_alone_scores a
          WHERE a.run_id = $run_id AND a.sequence_hash = s.sequence_hash
      )
    GROUP BY s.sequence_hash
)
SELECT q.trajectory_id, t.dataset, t.question_id
FROM sequences q
JOIN trajectories t USING (trajectory_id)
ORDER BY t.dataset, t.question_id, t.sample_idx, q.trajectory_id
