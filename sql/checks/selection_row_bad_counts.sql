-- Audit: a selection row whose rank and candidate count cannot be true: a chosen trajectory with
-- no candidates or a rank outside 1..candidates, a row without a trajectory that still carries
-- an NLL or rank, or an empty reason. Must return no rows.
-- Parameters: none
-- Output: selection_id, dataset, question_id, trajectory_id, problem
SELECT selection_id, dataset, question_id, trajectory_id,
       CASE WHEN trim(reason) = '' THEN 'empty reason'
            WHEN trajectory_id IS NULL THEN 'no trajectory but an nll or rank'
            ELSE 'rank ' || coalesce(CAST(rank AS VARCHAR), 'NULL') || ' of ' || candidates || ' candidates'
       END AS problem
FROM selection_rows
WHERE trim(reason) = ''
   OR (trajectory_id IS NULL AND (nll IS NOT NULL OR rank IS NOT NULL))
   OR (trajectory_id IS NOT NULL AND (rank IS NULL OR rank < 1 OR rank > candidates))
