-- Where a run's samples start in a shared data set (several runs, e.g. every model evaluated on one
-- benchmark): the index it was given, or else the next free one, after every trajectory of the data
-- set and every sample range another run registered (runs written before first_sample start at 0).
-- Parameters: $dataset VARCHAR, $run VARCHAR
-- Output: first_sample INTEGER, k INTEGER (the run's registered K; NULL for a new run)
SELECT coalesce(
           (SELECT coalesce(first_sample, 0) FROM generation_runs WHERE generation_run = $run),
           greatest(coalesce((SELECT max(sample_idx) + 1 FROM trajectories WHERE dataset = $dataset), 0),
                    coalesce((SELECT max(coalesce(first_sample, 0) + k) FROM generation_runs
                              WHERE dataset = $dataset), 0))
       )::INTEGER AS first_sample,
       (SELECT k FROM generation_runs WHERE generation_run = $run) AS k
