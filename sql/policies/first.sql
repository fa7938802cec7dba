-- first: per question, the clean candidate with the lowest sample_idx. With $k = 1 this is
-- exactly sample 0 when it is clean and nothing otherwise: vanilla agent distillation with K = 1
-- (the paper's baseline). With a larger K it is the first clean sample among the first K.
-- Parameters: $run_id VARCHAR (scoring run; only which trajectories count as scored),
--             $dataset VARCHAR (NULL: all data sets), $k INTEGER (NULL: all samples)
-- Output: one row per question: dataset, question_id, trajectory_id (NULL: none chosen), nll,
--         rank (the chosen one's NLL rank, 1 = lowest), candidates, reason
-- The candidate pool and the no-candidate reasons come from sql/selection/macros.sql.
WITH candidates AS (
    SELECT * FROM question_candidates($run_id, $dataset, $k)
),
chosen AS (
    SELECT *
    FROM candidates
    -- earliest sample first, whatever its NLL
    QUALIFY row_number() OVER (PARTITION BY dataset, question_id ORDER BY sample_idx, trajectory_id) = 1
)
SELECT dataset, question_id, trajectory_id, nll,
       nll_rank AS rank,
       candidates,
       -- why this trajectory, or why none
       coalesce(no_candidate, 'first clean sample') AS reason
FROM chosen
ORDER BY dataset, question_id
