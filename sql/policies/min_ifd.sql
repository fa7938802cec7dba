-- min_ifd: per question, the clean candidate with the lowest IFD (view trajectory_ifd: the mean
-- over its turns of exp(turn NLL given the history - turn NLL alone)): the turns the history
-- helps most, the opposite end of max_ifd. Needs the run's alone pass (`curate score --ifd`).
-- Parameters: $run_id VARCHAR (scoring run), $dataset VARCHAR (NULL: all data sets),
--             $k INTEGER (NULL: all samples; else only sample_idx < $k)
-- Output: one row per question: dataset, question_id, trajectory_id (NULL: none chosen), nll,
--         rank (the chosen one's NLL rank, 1 = lowest), candidates, reason
-- The candidate pool, the order (a candidate with a turn of IFD >= 1 only when every one has such
-- a turn; equal IFDs go to the earlier sample) and the reasons come from sql/selection/macros.sql
-- (question_candidates, scored_choice).
SELECT *
FROM scored_choice($run_id, $dataset, $k, 'ifd', false)
ORDER BY dataset, question_id
