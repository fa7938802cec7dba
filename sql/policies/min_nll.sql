-- min_nll (SmartAD): per question, the clean candidate with the lowest student NLL, i.e. the
-- teacher trajectory the student already finds most predictable.
-- Parameters: $run_id VARCHAR (scoring run), $dataset VARCHAR (NULL: all data sets),
--             $k INTEGER (NULL: all samples; else only sample_idx < $k)
-- Output: one row per question: dataset, question_id, trajectory_id (NULL: none chosen), nll,
--         rank (the chosen one's NLL rank, 1 = lowest), candidates, reason
-- The candidate pool and the no-candidate reasons come from sql/selection/macros.sql.
WITH candidates AS (
    SELECT * FROM question_candidates($run_id, $dataset, $k)
),
chosen AS (
    SELECT *
    FROM candidates
    -- rank 1 is the lowest NLL (equal NLLs: the earlier sample), or the no-candidate row
    WHERE nll_rank = 1 OR trajectory_id IS NULL
)
SELECT dataset, question_id, trajectory_id, nll,
       nll_rank AS rank,
       candidates,
       -- why this trajectory, or why none
       coalesce(no_candidate, 'lowest NLL') AS reason
FROM chosen
ORDER BY dataset, question_id
