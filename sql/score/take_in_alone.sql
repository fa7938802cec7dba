-- Take the rows of IFD's alone-pass parts into turn_alone_scores, keyed by the token sequence
-- (trajectory_scores.sequence_hash) of the trajectory each row was scored for; rows already there
-- are kept. Runs after trajectory_scores has taken in the run's main parts.
-- Parameters: $run_id VARCHAR, $files VARCHAR[] (complete alone-* part files of that run)
-- Output: none
INSERT INTO turn_alone_scores BY NAME
SELECT DISTINCT ON (s.sequence_hash, p.turn)
       $run_id AS run_id,
       s.sequence_hash,
       p.turn,
       p.tokens,          -- supervised tokens of the turn alone
       p.nll_sum,
       p.nll_mean
FROM read_parquet($files) p
JOIN trajectory_scores s ON s.run_id = $run_id AND s.trajectory_id = p.trajectory_id
WHERE p.turn IS NOT NULL
-- two workers may both have scored a sequence: the lowest trajectory id's rows win
ORDER BY s.sequence_hash, p.turn, p.trajectory_id
ON CONFLICT DO NOTHING
