-- The n lowest- and n highest-NLL trajectories of one scoring run.
-- Parameters: $run_id VARCHAR, $n INTEGER
-- Output: side ('lowest' | 'highest'), rank (1 = most extreme), trajectory_id, dataset,
--         question_id, sample_idx, correct, nll, turns, tokens, truncated
WITH scored AS (
    SELECT n.trajectory_id, t.dataset, t.question_id, t.sample_idx, t.correct,
           n.nll, n.turns, n.tokens, n.truncated
    FROM trajectory_nll n
    JOIN trajectories t USING (trajectory_id)
    WHERE n.run_id = $run_id AND n.nll IS NOT NULL   -- a trajectory with no scored turn has no NLL
),
ranked AS (
    SELECT *,
           row_number() OVER (ORDER BY nll, trajectory_id)      AS low_rank,   -- 1 = lowest NLL
           row_number() OVER (ORDER BY nll DESC, trajectory_id) AS high_rank   -- 1 = highest NLL
    FROM scored
)
SELECT side, rank, trajectory_id, dataset, question_id, sample_idx, correct, nll, turns, tokens, truncated
FROM (
    SELECT 'lowest' AS side, low_rank AS rank, * FROM ranked WHERE low_rank <= $n
    UNION ALL
    SELECT 'highest' AS side, high_rank AS rank, * FROM ranked WHERE high_rank <= $n
)
ORDER BY side = 'highest', rank
