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
    -- one aggregate instead of a window over all candidates: the same row, several times faster
    SELECT dataset, question_id,
           -- the lowest NLL; equal NLLs go to the earlier sample (the nll_rank order)
           arg_min(trajectory_id, (nll, sample_idx, trajectory_id)) AS trajectory_id,
           min(nll) AS nll,
           count(trajectory_id) AS candidates,
           any_value(no_candidate) AS no_candidate
    FROM candidates
    GROUP BY dataset, question_id
)
SELECT dataset, question_id, trajectory_id, nll,
       -- the lowest NLL is rank 1
       CASE WHEN trajectory_id IS NOT NULL THEN 1 END AS rank,
       candidates,
       -- why this trajectory, or why none
       coalesce(no_candidate, 'lowest NLL') AS reason
FROM chosen
ORDER BY dataset, question_id
