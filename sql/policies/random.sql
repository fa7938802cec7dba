-- random: per question, one clean candidate drawn at random, reproducibly: candidates are
-- ordered by md5(trajectory_id || ':' || seed), which any machine and DuckDB version computes
-- alike, so one seed always draws the same trajectories.
-- Parameters: $run_id VARCHAR (scoring run), $dataset VARCHAR (NULL: all data sets),
--             $k INTEGER (NULL: all samples; else only sample_idx < $k), $seed INTEGER
-- Output: one row per question: dataset, question_id, trajectory_id (NULL: none chosen), nll,
--         rank (the chosen one's NLL rank, 1 = lowest), candidates, reason
-- The candidate pool and the no-candidate reasons come from sql/selection/macros.sql.
WITH candidates AS (
    SELECT *,
           -- the draw: a seeded hash of the trajectory's id
           md5(trajectory_id || ':' || CAST($seed AS VARCHAR)) AS draw
    FROM question_candidates($run_id, $dataset, $k)
),
chosen AS (
    SELECT *
    FROM candidates
    -- smallest draw wins; a hash collision falls back to the earlier sample
    QUALIFY row_number() OVER (PARTITION BY dataset, question_id ORDER BY draw, sample_idx, trajectory_id) = 1
)
SELECT dataset, question_id, trajectory_id, nll,
       nll_rank AS rank,
       candidates,
       -- why this trajectory, or why none
       coalesce(no_candidate, 'random draw') AS reason
FROM chosen
ORDER BY dataset, question_id
