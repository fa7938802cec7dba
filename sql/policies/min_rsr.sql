-- min_rsr: per question, the clean candidate with the lowest rank-surprisal ratio (RSR, arXiv
-- 2601.14249; view trajectory_rsr: the clipped ranks of its tokens among the student's logits,
-- summed, over their NLLs summed): teacher text informative to the student yet aligned with it.
-- Parameters: $run_id VARCHAR (scoring run), $dataset VARCHAR (NULL: all data sets),
--             $k INTEGER (NULL: all samples; else only sample_idx < $k)
-- Output: one row per question: dataset, question_id, trajectory_id (NULL: none chosen), nll,
--         rank (the chosen one's NLL rank, 1 = lowest), candidates, reason
-- The candidate pool, the order (equal RSRs go to the earlier sample) and the reasons come from
-- sql/selection/macros.sql (question_candidates, scored_choice).
SELECT *
FROM scored_choice($run_id, $dataset, $k, 'rsr', false)
ORDER BY dataset, question_id
