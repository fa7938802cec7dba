-- Per question of a selection, the chosen NLL next to the NLLs of the candidates it was chosen
-- from (clean, within the selection's K, scored in its run; the pool of sql/selection/macros.sql).
-- Parameters: $selection_id VARCHAR, $limit INTEGER (NULL: every question)
-- Output: dataset, question_id, trajectory_id, chosen_nll, rank, candidates,
--         other_nlls (the other candidates' NLLs, ascending), reason
WITH chosen AS (
    SELECT r.*, s.run_id, s.k
    FROM selection_rows r
    JOIN selections s USING (selection_id)
    WHERE r.selection_id = $selection_id
),
others AS (
    SELECT c.dataset, c.question_id,
           -- every candidate except the chosen one
           list(n.nll ORDER BY n.nll, t.sample_idx) FILTER (WHERE t.trajectory_id <> c.trajectory_id) AS other_nlls
    FROM chosen c
    JOIN trajectories t ON t.dataset = c.dataset AND t.question_id = c.question_id
    JOIN trajectory_nll n ON n.trajectory_id = t.trajectory_id AND n.run_id = c.run_id
    WHERE t.clean AND (c.k IS NULL OR t.sample_idx < c.k) AND c.trajectory_id IS NOT NULL AND n.nll IS NOT NULL
    GROUP BY c.dataset, c.question_id
)
SELECT c.dataset, c.question_id, c.trajectory_id, c.nll AS chosen_nll, c.rank, c.candidates,
       coalesce(o.other_nlls, []) AS other_nlls,
       c.reason
FROM chosen c
LEFT JOIN others o USING (dataset, question_id)
ORDER BY c.trajectory_id IS NULL, c.dataset, c.question_id
LIMIT coalesce($limit, 9223372036854775807)
