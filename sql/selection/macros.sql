-- What every selection policy starts from, as temporary table macros (curate.select loads this
-- file on the connection before running a policy; in a plain DuckDB shell, `.read` it first).
--
-- question_candidates(sel_run, sel_dataset, sel_k): the pool a policy chooses from.
--   Parameters: sel_run VARCHAR (scoring run), sel_dataset VARCHAR (NULL: every data set),
--               sel_k INTEGER (NULL: every sample)
--   Output: one row per candidate, plus one row per question that has none:
--     dataset, question_id,
--     trajectory_id, sample_idx, nll  -- the candidate (NULL on a question's no-candidate row)
--     nll_rank      -- 1 = lowest NLL among the question's candidates; equal NLLs by sample_idx
--     candidates    -- the question's candidate count (0 on a no-candidate row)
--     no_candidate  -- why the question has no candidate; NULL on candidate rows
--   A candidate is a clean trajectory with sample_idx < sel_k and an NLL in run sel_run. A clean
--   trajectory the run did not score, or scored with no turn (its prompt alone longer than the
--   run's max_length), is not a candidate: NLL-free policies (first, random) use the same pool,
--   so policies compared on one run always choose among the same trajectories.
--   `curate compare --pool all` sets the variable selection_pool to 'all' (SET VARIABLE): then
--   every scored trajectory is a candidate, correct or not, to see what a score chooses ungraded.
--   Questions come from the questions table, so a question whose samples all failed still
--   appears. Because a no-candidate question has exactly one row, a policy that keeps one row per
--   question reports it without a join.

CREATE OR REPLACE TEMP MACRO question_candidates(sel_run, sel_dataset, sel_k) AS TABLE
WITH asked AS (
    SELECT dataset, question_id
    FROM questions
    WHERE sel_dataset IS NULL OR dataset = sel_dataset
),
run_nll AS (
    -- the run's trajectory NLLs (the trajectory_nll view: NULL where no turn was scored)
    SELECT trajectory_id, nll, truncated
    FROM trajectory_nll
    WHERE run_id = sel_run
),
pooled AS (
    SELECT t.*,
           -- in the pool: clean, or under selection_pool 'all' any trajectory
           t.clean OR coalesce(getvariable('selection_pool') = 'all', false) AS pooled
    FROM trajectories t
    WHERE sel_dataset IS NULL OR t.dataset = sel_dataset
),
samples AS (
    SELECT t.dataset, t.question_id, t.trajectory_id, t.sample_idx, t.pooled AS clean, s.nll,
           -- the K study keeps only the first K samples of each question
           (sel_k IS NULL OR t.sample_idx < sel_k) AS in_k,
           -- scored in this run, though perhaps with no turn left (s.nll NULL)
           t.pooled AND (sel_k IS NULL OR t.sample_idx < sel_k) AND s.trajectory_id IS NOT NULL AS scored,
           -- of those, cut to nothing by the run's max_length
           coalesce(s.truncated AND s.nll IS NULL, false) AS cut_to_nothing,
           -- may be chosen: in the pool (clean), within K, with an NLL in this run
           t.pooled AND (sel_k IS NULL OR t.sample_idx < sel_k) AND s.nll IS NOT NULL AS eligible
    FROM pooled t
    LEFT JOIN run_nll s USING (trajectory_id)
),
ranked AS (
    SELECT dataset, question_id, trajectory_id, sample_idx, nll,
           row_number() OVER by_nll AS nll_rank,
           -- the whole partition: one window (one sort) serves both columns
           count(*) OVER (by_nll ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS candidates,
           CAST(NULL AS VARCHAR) AS no_candidate
    FROM samples
    WHERE eligible
    -- trajectory_id only orders two samples that share a sample_idx
    WINDOW by_nll AS (PARTITION BY dataset, question_id ORDER BY nll, sample_idx, trajectory_id)
),
per_question AS (
    SELECT dataset, question_id,
           count(*)                                  AS trajectories,
           count(*) FILTER (WHERE clean)             AS clean,
           count(*) FILTER (WHERE clean AND in_k)    AS clean_in_k,
           count(*) FILTER (WHERE scored)            AS scored,
           count(*) FILTER (WHERE scored AND cut_to_nothing) AS cut_to_nothing,
           count(*) FILTER (WHERE eligible)          AS eligible
    FROM samples
    GROUP BY dataset, question_id
),
none AS (
    SELECT a.dataset, a.question_id,
           0 AS candidates,
           -- the first missing condition, in the order a trajectory has to pass them
           CASE WHEN coalesce(p.trajectories, 0) = 0 THEN 'no trajectory'
                WHEN p.clean = 0 THEN 'no clean trajectory'
                WHEN p.clean_in_k = 0 THEN 'no clean trajectory with sample_idx < k'
                WHEN p.scored = 0 THEN 'clean trajectories not scored in this run'
                WHEN p.cut_to_nothing > 0 THEN 'clean trajectories truncated: no turn within the run''s max_length'
                ELSE 'clean trajectories have no assistant turn'
           END AS no_candidate
    FROM asked a
    LEFT JOIN per_question p USING (dataset, question_id)
    WHERE coalesce(p.eligible, 0) = 0
)
SELECT * FROM ranked
UNION ALL BY NAME
SELECT * FROM none;

-- scored_choice(sel_run, sel_dataset, sel_k, sel_score, sel_highest): a policy's rows (the
-- contract of sql/policies/) choosing by a student-aware score other than the NLL.
--   Parameters: sel_run, sel_dataset, sel_k as question_candidates; sel_score VARCHAR: 'rsr' (view
--               trajectory_rsr) or 'ifd' (view trajectory_ifd); sel_highest BOOLEAN: the highest
--               score wins (else the lowest)
--   Output: dataset, question_id, trajectory_id, nll, rank (its NLL rank), candidates, reason
--   Order among a question's candidates: those with the score first; for IFD, those with no turn
--   of IFD >= 1 before those with one (Superfiltering drops such samples; here one is chosen only
--   when every candidate with an IFD has such a turn, and the reason says so); then the score;
--   equal scores go to the earlier sample. A question whose candidates have no score gets no
--   trajectory and a reason that names the pass the run lacks.
CREATE OR REPLACE TEMP MACRO scored_choice(sel_run, sel_dataset, sel_k, sel_score, sel_highest) AS TABLE
WITH candidates AS (
    SELECT c.*,
           CASE sel_score WHEN 'rsr' THEN r.rsr WHEN 'ifd' THEN i.ifd
                ELSE error('unknown score ''' || sel_score || ''' (known: rsr, ifd)')
           END AS score,
           -- a turn the history makes harder to predict than the turn alone
           sel_score = 'ifd' AND coalesce(i.flagged_turns, 0) > 0 AS flagged
    FROM question_candidates(sel_run, sel_dataset, sel_k) c
    LEFT JOIN trajectory_rsr r ON r.run_id = sel_run AND r.trajectory_id = c.trajectory_id
    LEFT JOIN trajectory_ifd i ON i.run_id = sel_run AND i.trajectory_id = c.trajectory_id
),
ranked AS (
    SELECT *,
           row_number() OVER (
               PARTITION BY dataset, question_id
               ORDER BY score IS NULL, flagged, CASE WHEN sel_highest THEN -score ELSE score END,
                        sample_idx, trajectory_id
           ) AS pick,
           -- candidates of the question that have the score
           count(score) OVER (PARTITION BY dataset, question_id) AS scored
    FROM candidates
)
SELECT dataset, question_id,
       CASE WHEN scored > 0 THEN trajectory_id END AS trajectory_id,
       CASE WHEN scored > 0 THEN nll END AS nll,
       CASE WHEN scored > 0 THEN nll_rank END AS rank,
       candidates,
       -- why this trajectory, or why none
       CASE WHEN no_candidate IS NOT NULL THEN no_candidate
            WHEN scored = 0 AND sel_score = 'ifd'
                THEN 'clean candidates have no IFD in this run (score it with curate score --ifd)'
            WHEN scored = 0 THEN 'clean candidates have no RSR in this run (its backend gave no token ranks)'
            ELSE CASE WHEN sel_highest THEN 'highest ' ELSE 'lowest ' END || upper(sel_score)
                 || CASE WHEN flagged THEN '; every candidate has a turn with IFD >= 1' ELSE '' END
       END AS reason
FROM ranked
WHERE pick = 1;
