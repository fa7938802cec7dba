-- Take the per-turn rows of parquet parts into turn_scores; rows already there are kept.
-- Parameters: $run_id VARCHAR, $files VARCHAR[] (complete part files of that run)
-- Output: none
INSERT INTO turn_scores
SELECT DISTINCT ON (trajectory_id, turn)
       $run_id AS run_id, trajectory_id, turn, tokens, nll_sum, nll_mean
FROM read_parquet($files)
WHERE turn IS NOT NULL          -- a trajectory with no scored turn has one row with a null turn
ON CONFLICT DO NOTHING
