-- Take the per-turn rows of parquet parts into turn_scores; rows already there are kept.
-- Identical token sequences get identical numbers, however the run's work was split into parts,
-- shards and resumptions: a new trajectory takes the turn rows of a trajectory of the run with
-- the same sequence_hash that the store already holds, else those of the lowest such id in the parts.
-- Runs before trajectory_scores takes the same parts in (a new trajectory is one not yet there).
-- Parameters: $run_id VARCHAR, $files VARCHAR[] (complete part files of that run)
-- Output: none
INSERT INTO turn_scores BY NAME
WITH parts AS (
    SELECT * FROM read_parquet($files)
),
new AS (
    SELECT DISTINCT trajectory_id, sequence_hash
    FROM parts
    WHERE trajectory_id NOT IN (SELECT trajectory_id FROM trajectory_scores WHERE run_id = $run_id)
),
stored AS (
    -- one trajectory per sequence already in the store (all of them carry the same rows)
    SELECT sequence_hash, min(trajectory_id) AS source
    FROM trajectory_scores
    WHERE run_id = $run_id AND sequence_hash IN (SELECT sequence_hash FROM new)
    GROUP BY sequence_hash
),
source AS (
    SELECT n.trajectory_id,
           -- whose turn rows this trajectory gets, and whether they are in the store or the parts
           coalesce(s.source, min(n.trajectory_id) OVER (PARTITION BY n.sequence_hash)) AS source,
           s.source IS NOT NULL AS in_store
    FROM new n
    LEFT JOIN stored s USING (sequence_hash)
),
part_turns AS (
    SELECT DISTINCT ON (trajectory_id, turn) trajectory_id, turn, tokens, nll_sum, nll_mean, rank_sum, rank_clip
    FROM parts
    WHERE turn IS NOT NULL      -- a trajectory with no scored turn has one row with a null turn
)
SELECT $run_id AS run_id, src.trajectory_id, t.turn, t.tokens, t.nll_sum, t.nll_mean, t.rank_sum, t.rank_clip
FROM source src
JOIN turn_scores t ON src.in_store AND t.run_id = $run_id AND t.trajectory_id = src.source
UNION ALL
SELECT $run_id AS run_id, src.trajectory_id, p.turn, p.tokens, p.nll_sum, p.nll_mean, p.rank_sum, p.rank_clip
FROM source src
JOIN part_turns p ON NOT src.in_store AND p.trajectory_id = src.source
