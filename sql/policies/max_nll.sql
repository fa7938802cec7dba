-- max_nll: per question, the clean candidate with the highest student NLL (the hardest one for
-- the student; the opposite end of SmartAD, for ablations).
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
    -- highest NLL first; equal NLLs still go to the earlier sample
    QUALIFY row_number() OVER (PARTITION BY dataset, question_id ORDER BY nll DESC, sample_idx, trajectory_id) = 1
)
SELECT dataset, question_id, trajectory_id, nll,
       nll_rank AS rank,
       candidates,
       -- why this trajectory, or why none
       coalesce(no_candidate, 'highest NLL') AS reason
FROM chosen
ORDER BY dataset, question_id
