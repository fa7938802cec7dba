-- median_nll: per question, the clean candidate with the median student NLL; with an even
-- number of candidates, the lower of the two middle ones.
-- Parameters: $run_id VARCHAR (scoring run), $dataset VARCHAR (NULL: all data sets),
--             $k INTEGER (NULL: all samples; else only sample_idx < $k)
-- Output: one row per question: dataset, question_id, trajectory_id (NULL: none chosen), nll,
--         rank (the chosen one's NLL rank, 1 = lowest), candidates, reason
-- The candidate pool and the no-candidate reasons come from sql/selection/macros.sql.
WITH candidates AS (
    SELECT *,
           -- NLL rank of the median: (n + 1) / 2 rounded down is the lower middle for even n
           (candidates + 1) // 2 AS median_rank
    FROM question_candidates($run_id, $dataset, $k)
),
chosen AS (
    SELECT *
    FROM candidates
    -- keeps the median-ranked candidate, or the question's single no-candidate row
    WHERE nll_rank = median_rank OR trajectory_id IS NULL
)
SELECT dataset, question_id, trajectory_id, nll,
       nll_rank AS rank,
       candidates,
       -- why this trajectory, or why none
       coalesce(no_candidate, 'median NLL') AS reason
FROM chosen
ORDER BY dataset, question_id
