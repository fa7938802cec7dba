-- Why each question of a selection got its trajectory, or none: counts per reason.
-- Parameters: $selection_id VARCHAR
-- Output: reason, selected (true: a trajectory was chosen), questions
SELECT reason,
       trajectory_id IS NOT NULL AS selected,
       count(*) AS questions
FROM selection_rows
WHERE selection_id = $selection_id
GROUP BY ALL
ORDER BY selected DESC, questions DESC, reason
