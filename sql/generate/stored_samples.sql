-- The (question, sample) pairs a generation run has written: what a resumed run skips.
-- Parameters: $run VARCHAR
-- Output: question_id, sample_idx
SELECT question_id, sample_idx
FROM trajectories
WHERE generation_run = $run
