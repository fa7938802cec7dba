-- What each given selection did for the questions of the given trajectories: the trajectory it
-- chose (NULL: none) and its reason (the viewer's highlights).
-- Parameters: $selections VARCHAR[] (selection ids), $ids VARCHAR[] (trajectory ids)
-- Output: dataset, question_id, selection_id, trajectory_id, reason
WITH asked AS (
    SELECT DISTINCT dataset, question_id
    FROM trajectories
    WHERE trajectory_id IN (SELECT unnest($ids))
)
SELECT r.dataset, r.question_id, r.selection_id, r.trajectory_id, r.reason
FROM selection_rows r
SEMI JOIN asked USING (dataset, question_id)
WHERE r.selection_id IN (SELECT unnest($selections))
ORDER BY r.dataset, r.question_id, r.selection_id
