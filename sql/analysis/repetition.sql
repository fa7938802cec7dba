-- Fill the repetition cache for trajectories that have none yet (incremental; run before analyses).
-- Repetition = share of repeated word 4-grams in a trajectory's assistant text:
--   1 - distinct 4-grams / 4-grams, over the lower-cased, whitespace-split words of its assistant
--   messages joined in order (a turn that repeats an earlier one counts as repetition).
--   NULL when there are fewer than 4 words. 4-grams are compared by hash (collisions are
--   negligible at these sizes), which keeps the pass at a few seconds per 100k trajectories.
-- Parameters: none
-- Output: inserts into trajectory_repetition (trajectory_id, words, ngrams, repeated); returns
--         the inserted row count.
INSERT INTO trajectory_repetition
WITH missing AS (
    SELECT trajectory_id
    FROM trajectories
    ANTI JOIN trajectory_repetition USING (trajectory_id)
),
text AS (
    SELECT m.trajectory_id,
           string_agg(m.text, ' ' ORDER BY m.position) AS assistant_text
    FROM messages m
    SEMI JOIN missing USING (trajectory_id)
    WHERE m.norm_role = 'assistant'
    GROUP BY m.trajectory_id
),
words AS (
    SELECT trajectory_id,
           -- words: the runs of non-whitespace characters
           regexp_extract_all(lower(assistant_text), '\S+') AS w
    FROM text
),
grams AS (
    SELECT trajectory_id,
           len(w) AS n_words,
           list_transform(range(1, len(w) - 2), lambda i: hash(w[i], w[i + 1], w[i + 2], w[i + 3])) AS g
    FROM words
)
SELECT missing.trajectory_id,
       coalesce(n_words, 0) AS words,
       coalesce(len(g), 0) AS ngrams,
       CASE WHEN len(g) > 0 THEN 1 - len(list_distinct(g)) / len(g) END AS repeated
FROM missing
LEFT JOIN grams USING (trajectory_id)
