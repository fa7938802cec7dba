-- Trajectories a scoring run holds without an NLL, so in no tertile: per data set, how many, and
-- how many of them were cut to nothing by the run's max_length (the rest have no assistant turn).
-- Parameters: $run_id VARCHAR, $dataset VARCHAR (NULL: every data set)
-- Output: dataset, unbucketed, truncated (zero rows when every scored trajectory has an NLL)
SELECT t.dataset,
       count(*)                               AS unbucketed,
       count(*) FILTER (WHERE n.truncated)    AS truncated
FROM trajectory_nll n
JOIN trajectories t USING (trajectory_id)
WHERE n.run_id = $run_id AND n.nll IS NULL AND ($dataset IS NULL OR t.dataset = $dataset)
GROUP BY t.dataset
ORDER BY t.dataset
