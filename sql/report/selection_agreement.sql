-- For every ordered pair of the given selections: on how many questions both chose one and the
-- same trajectory (a selection with itself: the questions it chose a trajectory for).
-- Parameters: $ids VARCHAR[] (selection ids)
-- Output: a, b, same_trajectory (0 where the two never agree)
WITH chosen AS (
    SELECT selection_id, dataset, question_id, trajectory_id
    FROM selection_rows
    WHERE selection_id IN (SELECT unnest($ids)) AND trajectory_id IS NOT NULL
),
pairs AS (
    SELECT x.selection_id AS a, y.selection_id AS b, count(*) AS same_trajectory
    FROM chosen x
    JOIN chosen y USING (dataset, question_id, trajectory_id)
    GROUP BY ALL
)
SELECT a.a, b.b, coalesce(p.same_trajectory, 0) AS same_trajectory
FROM unnest($ids) a(a)
CROSS JOIN unnest($ids) b(b)
LEFT JOIN pairs p USING (a, b)
ORDER BY list_position($ids, a.a), list_position($ids, b.b)
