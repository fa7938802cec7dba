-- What every tertile analysis starts from, as temporary table macros (curate.analysis loads this
-- file on the connection before running an analysis; in a plain DuckDB shell, `.read` it first).
--
-- scored_pool(a_run, a_dataset, a_by_model): the trajectories one scoring run scored.
--   Parameters: a_run VARCHAR (scoring run), a_dataset VARCHAR (NULL: every data set),
--               a_by_model BOOLEAN (true: group by teacher model)
--   Output: one row per scored trajectory (correct and incorrect alike):
--     dataset, teacher_model     -- the group: teacher_model is '(all)' unless a_by_model
--     question_id, trajectory_id, sample_idx,
--     nll, tokens                -- trajectory NLL (macro average of turn means), supervised tokens
--     correct, assistant_chars, tool_calls,
--     q_words                    -- words of the trajectory's question
--     repetition                 -- share of repeated word 4-grams (NULL until cached, or < 4 words)
--
-- tertile_buckets(a_run, a_dataset, a_rule, a_by_model): every pooled trajectory twice, once per
--   scope, with its bucket.
--   Parameters: as scored_pool, plus a_rule VARCHAR: 'quantile' (default in curate) or 'rank'
--   Output: the scored_pool columns plus
--     scope       -- 'global': one partition per (dataset, teacher_model);
--                    'per_question': one partition per (dataset, teacher_model, question_id)
--     nll_rank    -- 1-based position in the partition by (nll, sample_idx, trajectory_id)
--     n           -- trajectories in the partition
--     bucket_idx  -- 0 EASY, 1 MEDIUM, 2 HARD
--     bucket      -- 'EASY' | 'MEDIUM' | 'HARD'
--   Rules, for a partition of n trajectories sorted by NLL (x_1 <= ... <= x_n):
--     rank:     equal-count split, identical to ntile(3) over that order: position r goes to
--               bucket floor(3 (r - 1) / n); sizes differ by at most one, the extra ones go to
--               the lower buckets (n = 10: 4/3/3; n = 2: EASY, MEDIUM; n = 1: EASY). Equal NLLs are
--               ordered by sample_idx, then trajectory_id, so the split is total and stable.
--     quantile: value thresholds t1, t2 at the 1/3 and 2/3 quantiles; EASY if nll <= t1, MEDIUM if
--               t1 < nll <= t2, HARD otherwise (ties go to the lower bucket). The quantile is the
--               linear-interpolation one (DuckDB quantile_cont, numpy/pandas default): position
--               p = (n - 1) q between order statistics. Because every value lies on an order
--               statistic, "nll <= interpolated t" is the same as "nll <= x_k" with
--               k = floor((n - 1) q) + 1, so the thresholds are taken as those order statistics
--               (exact by construction: no interpolated float is ever compared).
--               Ties and small n make the counts unequal (n = 10 distinct: 4/3/3; n = 2: EASY,
--               HARD; n = 1: EASY; identical samples all land in the lower bucket), which is what
--               the paper's per-question counts (5116 / 2190 / 2237) show. quantile_disc (the
--               inverse-CDF quantile) would put the upper threshold one order statistic higher
--               for n = 2, 5, 8, ..., moving trajectories from HARD to MEDIUM.

CREATE OR REPLACE TEMP MACRO scored_pool(a_run, a_dataset, a_by_model) AS TABLE
WITH scores AS (
    -- the run's trajectory NLLs (the trajectory_nll view); one with no scored turn has no NLL to
    -- bucket and is left out here (unscorable(...) counts them)
    SELECT trajectory_id, nll, tokens
    FROM trajectory_nll
    WHERE run_id = a_run AND nll IS NOT NULL
)
SELECT t.dataset,
       -- the grouping key: one group per teacher, or one for everything
       CASE WHEN a_by_model THEN coalesce(t.teacher_model, '(unknown)') ELSE '(all)' END AS teacher_model,
       t.question_id,
       t.trajectory_id,
       t.sample_idx,
       s.nll,
       s.tokens,
       t.correct,
       t.assistant_chars,
       t.tool_calls,
       q.words AS q_words,
       r.repeated AS repetition
FROM trajectories t
JOIN scores s ON s.trajectory_id = t.trajectory_id
JOIN questions q ON q.dataset = t.dataset AND q.question_id = t.question_id
LEFT JOIN trajectory_repetition r ON r.trajectory_id = t.trajectory_id
WHERE a_dataset IS NULL OR t.dataset = a_dataset;

CREATE OR REPLACE TEMP MACRO tertile_buckets(a_run, a_dataset, a_rule, a_by_model) AS TABLE
WITH pool AS MATERIALIZED (
    SELECT * FROM scored_pool(a_run, a_dataset, a_by_model)
),
scoped AS (
    -- part: the partition inside (dataset, teacher_model); NULL pools the whole group
    SELECT 'global' AS scope, CAST(NULL AS VARCHAR) AS part, * FROM pool
    UNION ALL
    SELECT 'per_question' AS scope, question_id AS part, * FROM pool
),
ranked AS (
    SELECT *,
           row_number() OVER (PARTITION BY dataset, teacher_model, scope, part
                              ORDER BY nll, sample_idx, trajectory_id) AS nll_rank
    FROM scoped
),
sorted AS (
    SELECT dataset, teacher_model, scope, part,
           count(*) AS n,
           list_sort(list(nll)) AS nlls
    FROM scoped
    GROUP BY dataset, teacher_model, scope, part
),
partitions AS (
    SELECT dataset, teacher_model, scope, part, n,
           -- t1, t2: the order statistics at positions floor((n - 1) q) + 1, q = 1/3 and 2/3
           nlls[(n - 1) // 3 + 1] AS t1,
           nlls[2 * (n - 1) // 3 + 1] AS t2
    FROM sorted
),
thresholds AS (
    SELECT r.*, p.n, p.t1, p.t2
    FROM ranked r
    JOIN partitions p
      ON p.dataset = r.dataset AND p.teacher_model = r.teacher_model AND p.scope = r.scope
     AND p.part IS NOT DISTINCT FROM r.part
),
bucketed AS (
    SELECT *,
           CASE a_rule
               WHEN 'rank' THEN 3 * (nll_rank - 1) // n
               WHEN 'quantile' THEN CASE WHEN nll <= t1 THEN 0 WHEN nll <= t2 THEN 1 ELSE 2 END
               ELSE error('unknown tertile rule ''' || a_rule || ''' (known: quantile, rank)')
           END AS bucket_idx
    FROM thresholds
)
SELECT * EXCLUDE (part, t1, t2),
       ['EASY', 'MEDIUM', 'HARD'][bucket_idx + 1] AS bucket
FROM bucketed;

-- bucket_stats(a_run, a_dataset, a_rule, a_by_model): the per-bucket statistics.
--   Output: one row per (dataset, teacher_model, scope, bucket), all three buckets always present
--   (an empty bucket has n_traj 0, n_q 0 and NULL means):
--     dataset, teacher_model, scope, bucket_idx, bucket,
--     n_traj, n_q, mean_nll, traj_chars, tool_calls, acc, q_words, tokens, repetition
CREATE OR REPLACE TEMP MACRO bucket_stats(a_run, a_dataset, a_rule, a_by_model) AS TABLE
WITH bucketed AS (
    SELECT * FROM tertile_buckets(a_run, a_dataset, a_rule, a_by_model)
),
stats AS (
    SELECT dataset, teacher_model, scope, bucket_idx,
           count(*)                          AS n_traj,
           count(DISTINCT question_id)       AS n_q,
           avg(nll)                          AS mean_nll,
           -- characters of assistant text per trajectory
           avg(assistant_chars)              AS traj_chars,
           -- code actions per trajectory
           avg(tool_calls)                   AS tool_calls,
           -- accuracy in percent: share of correct trajectories
           100 * avg(CAST(correct AS INTEGER)) AS acc,
           -- question words, averaged over trajectories (a question counts once per trajectory)
           avg(q_words)                      AS q_words,
           -- supervised tokens the student scored
           avg(tokens)                       AS tokens,
           -- over trajectories with a cached value (NULLs skipped)
           avg(repetition)                   AS repetition
    FROM bucketed
    GROUP BY dataset, teacher_model, scope, bucket_idx
),
grid AS (
    -- every bucket of every group and scope, so that empty buckets show as rows
    SELECT DISTINCT dataset, teacher_model, scope, b.bucket_idx
    FROM stats, range(3) b(bucket_idx)
)
SELECT g.dataset, g.teacher_model, g.scope, CAST(g.bucket_idx AS INTEGER) AS bucket_idx,
       ['EASY', 'MEDIUM', 'HARD'][g.bucket_idx + 1] AS bucket,
       coalesce(s.n_traj, 0) AS n_traj,
       coalesce(s.n_q, 0) AS n_q,
       s.mean_nll, s.traj_chars, s.tool_calls, s.acc, s.q_words, s.tokens, s.repetition
FROM grid g
LEFT JOIN stats s USING (dataset, teacher_model, scope, bucket_idx);
