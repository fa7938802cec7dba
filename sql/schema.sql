-- The trajectory store, schema version 3.
-- One DuckDB file; every table is plain SQL so any DuckDB client can read it.
-- Raw messages are kept as ingested; the distillation role mapping is applied when rendering.
-- Idempotent: a store of an earlier version is upgraded by running this file again, so a table
-- added later is a CREATE TABLE IF NOT EXISTS and a column added to an existing table is an
-- ALTER TABLE ... ADD COLUMN IF NOT EXISTS at the end (with the version that added it).

CREATE TABLE IF NOT EXISTS meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

-- One row per ingested file (idempotence key: content hash + data set).
CREATE TABLE IF NOT EXISTS ingest_runs (
    ingest_id    INTEGER PRIMARY KEY,
    source_file  VARCHAR NOT NULL,
    file_hash    VARCHAR NOT NULL,     -- sha256 of the file's bytes
    format       VARCHAR NOT NULL,     -- smolagents | hf | chat | mint | jsonpath
    dataset      VARCHAR NOT NULL,
    records      INTEGER NOT NULL,
    trajectories INTEGER NOT NULL,
    failed_runs  INTEGER NOT NULL,
    questions    INTEGER NOT NULL,
    correct      INTEGER NOT NULL,
    clean        INTEGER NOT NULL,
    parse_error  INTEGER NOT NULL,
    max_steps    INTEGER NOT NULL,
    exec_error   INTEGER NOT NULL,
    rejects      INTEGER NOT NULL,
    options      JSON,                 -- format options (JSON paths, profile) used for this file
    started_at   TIMESTAMP NOT NULL,
    finished_at  TIMESTAMP NOT NULL,
    UNIQUE (file_hash, dataset)
);

CREATE TABLE IF NOT EXISTS questions (
    dataset     VARCHAR NOT NULL,
    question_id VARCHAR NOT NULL,      -- source id, or a hash of the normalised question text
    text        VARCHAR NOT NULL,
    gold_answer VARCHAR,
    words       INTEGER NOT NULL,      -- whitespace-separated words of text
    source_meta JSON,                  -- extra source fields (level, type, ...)
    PRIMARY KEY (dataset, question_id)
);

CREATE TABLE IF NOT EXISTS trajectories (
    trajectory_id    VARCHAR PRIMARY KEY,  -- stable: hash of (file hash, line, record index)
    dataset          VARCHAR NOT NULL,
    question_id      VARCHAR NOT NULL,
    sample_idx       INTEGER NOT NULL,     -- 0-based, in ingest order within (dataset, question)
    teacher_model    VARCHAR,
    correct          BOOLEAN NOT NULL,
    generated_answer VARCHAR,
    parse_error      BOOLEAN NOT NULL,     -- a tool response says 'Error in code parsing'
    max_steps        BOOLEAN NOT NULL,     -- a tool response says 'Reached max steps'
    exec_error       BOOLEAN NOT NULL,     -- a tool response says 'Code execution failed' (kept)
    clean            BOOLEAN NOT NULL,     -- correct, has messages, no parse error, no max steps
    assistant_turns  INTEGER NOT NULL,     -- assistant turns after the role mapping
    tool_calls       INTEGER NOT NULL,     -- action spans under the marker profile
    assistant_chars  INTEGER NOT NULL,     -- characters of assistant text
    profile          VARCHAR NOT NULL,     -- marker profile: smolagents | smolagents_new | mint
    content_hash     VARCHAR NOT NULL,     -- hash of the raw messages (duplicate samples share it)
    ingest_id        INTEGER NOT NULL,
    source_file      VARCHAR NOT NULL,
    source_line      INTEGER NOT NULL,     -- 1-based line (row for HF data sets) of the record
    cost             DOUBLE,
    error            VARCHAR
);

CREATE TABLE IF NOT EXISTS messages (
    trajectory_id VARCHAR NOT NULL,
    position      INTEGER NOT NULL,        -- 0-based order in the raw log
    role          VARCHAR NOT NULL,        -- as stored in the source (e.g. MessageRole.TOOL_RESPONSE)
    norm_role     VARCHAR NOT NULL,        -- system | user | assistant | tool-call | tool-response
    text          VARCHAR NOT NULL,
    PRIMARY KEY (trajectory_id, position)
);

-- Runs whose log is missing (log_data null): counted, never trajectories.
CREATE TABLE IF NOT EXISTS failed_runs (
    ingest_id     INTEGER NOT NULL,
    dataset       VARCHAR NOT NULL,
    question_id   VARCHAR,
    teacher_model VARCHAR,
    source_file   VARCHAR NOT NULL,
    source_line   INTEGER NOT NULL,
    error         VARCHAR
);

-- Records that could not be read: kept whole, with a reason naming the field.
CREATE TABLE IF NOT EXISTS ingest_rejects (
    ingest_id   INTEGER NOT NULL,
    source_file VARCHAR NOT NULL,
    source_line INTEGER NOT NULL,
    reason      VARCHAR NOT NULL,
    raw         BLOB                     -- the record's bytes as read (may not be UTF-8)
);

-- One row per scoring run (a student under fixed settings); scores are taken in from parquet parts.
CREATE TABLE IF NOT EXISTS scoring_runs (
    run_id          VARCHAR PRIMARY KEY,
    student         VARCHAR NOT NULL,    -- path or name as given
    weights_hash    VARCHAR NOT NULL,
    tokenizer_hash  VARCHAR NOT NULL,    -- tokenizer files and chat template
    backend         VARCHAR NOT NULL,
    dtype           VARCHAR NOT NULL,
    max_length      INTEGER NOT NULL,
    single_pass     BOOLEAN NOT NULL,    -- false where the template failed the prefix check
    code_version    VARCHAR NOT NULL,
    config          JSON NOT NULL,
    started_at      TIMESTAMP NOT NULL,
    finished_at     TIMESTAMP,
    trajectories    INTEGER,
    tokens          BIGINT
);

CREATE TABLE IF NOT EXISTS turn_scores (
    run_id        VARCHAR NOT NULL,
    trajectory_id VARCHAR NOT NULL,
    turn          INTEGER NOT NULL,      -- 0-based assistant turn in the rendered conversation
    tokens        INTEGER NOT NULL,
    nll_sum       DOUBLE NOT NULL,
    nll_mean      DOUBLE NOT NULL,
    PRIMARY KEY (run_id, trajectory_id, turn)
);

CREATE TABLE IF NOT EXISTS trajectory_scores (
    run_id        VARCHAR NOT NULL,
    trajectory_id VARCHAR NOT NULL,
    tokens        INTEGER NOT NULL,      -- supervised tokens scored
    truncated     BOOLEAN NOT NULL,      -- longer than max_length: scored over what fits
    PRIMARY KEY (run_id, trajectory_id)
);

-- Trajectory NLL: the macro average of its turn means (every turn counts the same); the one
-- definition every selection and analysis reads (sql/selection/macros.sql, sql/analysis/macros.sql).
-- One row per scored trajectory: one with no scored turn (cut to nothing by max_length, or no
-- assistant turn at all) has nll NULL and turns 0, so it is reported, never silently missing.
-- Turns are aggregated before the join (cheaper), with fsum so that the result does not depend
-- on row order: identical samples tie exactly, which selection and the quantile rule rely on.
CREATE OR REPLACE VIEW trajectory_nll AS
WITH per_trajectory AS (
    SELECT run_id, trajectory_id, fsum(nll_mean) / count(*) AS nll, count(*) AS turns
    FROM turn_scores
    GROUP BY run_id, trajectory_id
)
SELECT ts.run_id, ts.trajectory_id, p.nll, coalesce(p.turns, 0) AS turns, ts.tokens, ts.truncated
FROM trajectory_scores ts
LEFT JOIN per_trajectory p USING (run_id, trajectory_id);

-- Cache of a text statistic the tertile analyses report: filled by sql/analysis/repetition.sql
-- for trajectories that have no row yet (computing it on a million trajectories takes a minute).
CREATE TABLE IF NOT EXISTS trajectory_repetition (
    trajectory_id VARCHAR PRIMARY KEY,
    words         INTEGER NOT NULL,      -- whitespace-separated words of the assistant text
    ngrams        INTEGER NOT NULL,      -- word 4-grams (words - 3, at least 0)
    repeated      DOUBLE                 -- 1 - distinct 4-grams / 4-grams; NULL without a 4-gram
);

-- Stored selections: one row per selection, one row per (selection, question).
CREATE TABLE IF NOT EXISTS selections (
    selection_id VARCHAR PRIMARY KEY,    -- the --name, or policy plus parameters
    policy       VARCHAR NOT NULL,
    run_id       VARCHAR,
    dataset      VARCHAR,
    k            INTEGER,
    seed         INTEGER,
    params       JSON NOT NULL,
    created_at   TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS selection_rows (
    selection_id  VARCHAR NOT NULL,
    dataset       VARCHAR NOT NULL,
    question_id   VARCHAR NOT NULL,
    trajectory_id VARCHAR,               -- null: no clean candidate
    nll           DOUBLE,
    rank          INTEGER,               -- rank of the chosen one among candidates by NLL (1 = lowest)
    candidates    INTEGER NOT NULL,      -- clean candidates considered
    reason        VARCHAR NOT NULL,      -- why chosen, or why none
    PRIMARY KEY (selection_id, dataset, question_id)
);

-- One row per trajectory replayed by `curate replay` (its code actions re-executed in the sandbox;
-- a later replay of the same trajectory replaces the row).
CREATE TABLE IF NOT EXISTS replays (
    trajectory_id  VARCHAR PRIMARY KEY,
    steps          INTEGER NOT NULL,     -- code steps followed by a stored observation
    reproduced     INTEGER NOT NULL,     -- steps whose new observation matched the stored one
    first_mismatch INTEGER,              -- 0-based index of the first step that did not; NULL: none
    reason         VARCHAR,              -- what differed at first_mismatch
    replayed_at    TIMESTAMP NOT NULL
);
-- Grades of final answers: one row per (trajectory, grader). `curate grade` writes its grader's rows
-- and sets trajectories.correct / clean / graded_by from them; the verdict a log came with is kept
-- as grader 'source' before anything overwrites it.
CREATE TABLE IF NOT EXISTS grades (
    trajectory_id VARCHAR NOT NULL,
    grader        VARCHAR NOT NULL,      -- math | qa | judge:<model> | source (the log's own verdict)
    correct       BOOLEAN NOT NULL,
    score         DOUBLE,                -- math, judge, source: 1 / 0; qa: best token F1; NULL: not gradable
    explanation   VARCHAR,               -- why (the judge's words, math-verify's reading, a timeout, ...)
    grading_run   INTEGER,               -- the curate grade run that wrote it (NULL: source, inline grading)
    PRIMARY KEY (trajectory_id, grader)
);

-- One row per `curate grade` run on one data set; finished_at NULL while it runs (or if it was killed).
CREATE TABLE IF NOT EXISTS grading_runs (
    grading_run  INTEGER PRIMARY KEY,
    dataset      VARCHAR NOT NULL,
    grader       VARCHAR NOT NULL,       -- as resolved: math | qa | judge:<model>
    requested    VARCHAR NOT NULL,       -- as asked: auto | math | qa | judge
    options      JSON NOT NULL,          -- judge backend, workers, timeout, regrade
    code_version VARCHAR NOT NULL,
    started_at   TIMESTAMP NOT NULL,
    finished_at  TIMESTAMP,
    graded       INTEGER,                -- trajectories graded by this run
    kept         INTEGER,                -- trajectories that already had this grader's grade
    no_gold      INTEGER,                -- trajectories left as they were: their question has no gold answer
    correct      INTEGER                 -- correct trajectories of the data set after the run
);

-- One row per teacher-sampling run (`curate generate`): what produced its trajectories. The id is a
-- hash of the settings that decide a sample, so the same command resumes the same run.
CREATE TABLE IF NOT EXISTS generation_runs (
    generation_run       VARCHAR PRIMARY KEY,
    dataset              VARCHAR NOT NULL,
    questions_file       VARCHAR NOT NULL,
    model                VARCHAR NOT NULL,   -- path (made absolute), built-in name, or served model name
    backend              VARCHAR NOT NULL,   -- transformers | vllm | openai
    k                    INTEGER NOT NULL,   -- samples per question asked for by the latest invocation
    temperature          DOUBLE NOT NULL,
    top_p                DOUBLE NOT NULL,
    max_steps            INTEGER NOT NULL,
    max_new_tokens       INTEGER NOT NULL,   -- per generation call (one step)
    base_seed            BIGINT NOT NULL,    -- sample seeds derive from (base seed, question id, sample)
    tools                VARCHAR NOT NULL,   -- comma-separated: python, web_search
    profile              VARCHAR NOT NULL,   -- marker profile of the actions
    system_prompt_hash   VARCHAR NOT NULL,   -- hash of every prompt text the agent saw
    system_prompt        VARCHAR NOT NULL,   -- the system prompt as sent
    corpus               VARCHAR,            -- web_search over a local corpus ...
    corpus_hash          VARCHAR,
    retriever_url        VARCHAR,            -- ... or a retrieval server
    first_thought_prefix BOOLEAN NOT NULL,
    grader               VARCHAR NOT NULL,   -- inline grader (auto resolved over the question set)
    code_version         VARCHAR NOT NULL,
    config               JSON NOT NULL,      -- the latest invocation's settings
    started_at           TIMESTAMP NOT NULL,
    finished_at          TIMESTAMP,          -- NULL while running (or killed)
    seconds              DOUBLE,             -- generation time over all invocations
    trajectories         INTEGER,
    correct              INTEGER,
    clean                INTEGER,
    tokens               BIGINT              -- generated tokens over its trajectories
);

-- First-thought prefixes (agent-distillation): per question of a run, "Thought: " + the first
-- paragraph of a tool-free greedy answer, the start of every sample's first step.
CREATE TABLE IF NOT EXISTS generation_prefixes (
    generation_run VARCHAR NOT NULL,
    question_id    VARCHAR NOT NULL,
    prefix         VARCHAR NOT NULL,
    tokens         INTEGER NOT NULL,         -- generated for it
    PRIMARY KEY (generation_run, question_id)
);


-- One row per (eval run, benchmark) of `curate eval`: pass@1 of a model (with its adapter) as an agent
-- on a benchmark, the generation run holding its trajectories (data set eval:<benchmark>), and what
-- produced the number. The eval run id is a hash of the model, adapter and protocol.
CREATE TABLE IF NOT EXISTS eval_runs (
    eval_run             VARCHAR NOT NULL,
    benchmark            VARCHAR NOT NULL,   -- HotpotQA, MATH-500, ... or a question file's name
    dataset              VARCHAR NOT NULL,   -- eval:<benchmark>
    generation_run       VARCHAR NOT NULL,   -- its trajectories (one per question)
    name                 VARCHAR NOT NULL,   -- the run's label in tables (--name)
    model                VARCHAR NOT NULL,   -- path (made absolute), built-in name, or served model name
    adapter              VARCHAR,            -- LoRA adapter folder (NULL: the model alone)
    adapter_hash         VARCHAR,            -- sha256 over its config and weights
    backend              VARCHAR NOT NULL,
    protocol             JSON NOT NULL,      -- temperature, top_p, max_steps, max_new_tokens, seed,
                                             -- self_consistency, tools, profile, search
    system_prompt_source VARCHAR NOT NULL,   -- trained: <train_config.json> | packaged | file: <path>
    system_prompt_hash   VARCHAR NOT NULL,
    grader               VARCHAR NOT NULL,   -- math | qa | judge:<model>
    questions_file       VARCHAR NOT NULL,
    questions            INTEGER NOT NULL,   -- questions evaluated (n)
    correct              INTEGER NOT NULL,
    pass_at_1            DOUBLE NOT NULL,    -- percent
    code_version         VARCHAR NOT NULL,
    config               JSON NOT NULL,      -- the latest invocation's settings
    started_at           TIMESTAMP NOT NULL,
    finished_at          TIMESTAMP NOT NULL,
    PRIMARY KEY (eval_run, benchmark)
);

-- schema 2
-- The grader whose verdict trajectories.correct holds (NULL: the verdict the log came with).
ALTER TABLE trajectories ADD COLUMN IF NOT EXISTS graded_by VARCHAR;
-- trajectories written by `curate generate` (NULL for ingested logs)
ALTER TABLE trajectories ADD COLUMN IF NOT EXISTS generation_run VARCHAR;
ALTER TABLE trajectories ADD COLUMN IF NOT EXISTS seed BIGINT;              -- the sample's own seed
ALTER TABLE trajectories ADD COLUMN IF NOT EXISTS steps INTEGER;            -- model actions taken
ALTER TABLE trajectories ADD COLUMN IF NOT EXISTS generated_tokens INTEGER; -- every generation of the run
ALTER TABLE trajectories ADD COLUMN IF NOT EXISTS stop_reason VARCHAR;      -- final_answer | answer | max_steps
ALTER TABLE trajectories ADD COLUMN IF NOT EXISTS first_thought VARCHAR;    -- the injected prefix, if any
-- Why a trajectory was scored turn by turn (NULL: one forward pass over the whole of it), and a
-- hash of the token sequences it was scored from (identical ones share their numbers).
ALTER TABLE trajectory_scores ADD COLUMN IF NOT EXISTS fallback VARCHAR;
ALTER TABLE trajectory_scores ADD COLUMN IF NOT EXISTS sequence_hash VARCHAR;
-- hash of what decides a replay (limits, imports, tools, code): a rerun under the same settings skips it
ALTER TABLE replays ADD COLUMN IF NOT EXISTS settings VARCHAR;
-- where a run's samples start in its data set (sample_idx = first_sample + sample); 0 unless shared
ALTER TABLE generation_runs ADD COLUMN IF NOT EXISTS first_sample INTEGER;

-- schema 3
-- RSR: per turn, the sum of its tokens' ranks among the student's logits (1 + the logits strictly
-- above the token's), each clipped at rank_clip (100); NULL where the backend gave no ranks.
ALTER TABLE turn_scores ADD COLUMN IF NOT EXISTS rank_sum BIGINT;
ALTER TABLE turn_scores ADD COLUMN IF NOT EXISTS rank_clip INTEGER;

-- IFD's "alone" pass (`curate score --ifd`): each assistant turn scored as the only message of a
-- chat (after the template's own default system prompt), once per token sequence of a run
-- (trajectory_scores.sequence_hash), so identical samples share it.
CREATE TABLE IF NOT EXISTS turn_alone_scores (
    run_id        VARCHAR NOT NULL,
    sequence_hash VARCHAR NOT NULL,      -- the trajectories scored from these token sequences
    turn          INTEGER NOT NULL,      -- 0-based assistant turn
    tokens        INTEGER NOT NULL,      -- supervised tokens of the turn alone
    nll_sum       DOUBLE NOT NULL,
    nll_mean      DOUBLE NOT NULL,
    PRIMARY KEY (run_id, sequence_hash, turn)
);

-- Rank-surprisal ratio (arXiv 2601.14249): a trajectory's clipped token ranks summed over all its
-- scored turns, divided by its token NLLs summed likewise (token sums, as the paper's sample
-- ratio; its 1e-12 floor on the NLL sum kept). Lower: informative yet aligned with the student.
-- NULL where a scored turn has no rank sum (a backend without ranks) or no turn was scored.
CREATE OR REPLACE VIEW trajectory_rsr AS
WITH per_trajectory AS (
    SELECT run_id, trajectory_id,
           CAST(sum(rank_sum) AS BIGINT) AS rank_sum,
           fsum(nll_sum) AS nll_sum,
           CAST(sum(tokens) AS BIGINT) AS tokens,
           count(*) AS turns,
           count(rank_sum) AS ranked,
           any_value(rank_clip) AS rank_clip
    FROM turn_scores
    GROUP BY run_id, trajectory_id
)
SELECT run_id, trajectory_id,
       CASE WHEN ranked = turns THEN rank_sum / greatest(nll_sum, 1e-12) END AS rsr,
       CASE WHEN ranked = turns THEN rank_sum END AS rank_sum,
       nll_sum, tokens, turns, rank_clip
FROM per_trajectory;

-- IFD (Li et al. 2023; Superfiltering under a small student) per scored turn:
-- exp(turn NLL given its history - turn NLL alone), both token means. Above 1 the history makes
-- the turn harder to predict, the case Superfiltering drops (flagged).
CREATE OR REPLACE VIEW turn_ifd AS
SELECT t.run_id, t.trajectory_id, t.turn,
       t.nll_mean AS nll, a.nll_mean AS nll_alone,
       exp(t.nll_mean - a.nll_mean) AS ifd,
       exp(t.nll_mean - a.nll_mean) >= 1 AS flagged
FROM turn_scores t
JOIN trajectory_scores s USING (run_id, trajectory_id)
JOIN turn_alone_scores a ON a.run_id = t.run_id AND a.sequence_hash = s.sequence_hash AND a.turn = t.turn;

-- A trajectory's IFD: the mean of its turns' IFDs (every turn counts the same, as in
-- trajectory_nll), with fsum so that identical samples tie exactly; flagged_turns counts the turns
-- with IFD >= 1. One row per trajectory whose every scored turn has an alone row.
CREATE OR REPLACE VIEW trajectory_ifd AS
WITH scored AS (
    SELECT run_id, trajectory_id, count(*) AS turns
    FROM turn_scores
    GROUP BY run_id, trajectory_id
),
per_trajectory AS (
    SELECT run_id, trajectory_id,
           fsum(ifd) / count(*) AS ifd,
           count(*) AS turns,
           count(*) FILTER (WHERE flagged) AS flagged_turns
    FROM turn_ifd
    GROUP BY run_id, trajectory_id
)
SELECT p.run_id, p.trajectory_id, p.ifd, p.turns, p.flagged_turns
FROM per_trajectory p
JOIN scored s USING (run_id, trajectory_id)
WHERE p.turns = s.turns;
