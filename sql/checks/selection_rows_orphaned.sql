-- Audit: selection rows whose selection is not in the selections table. Must return no rows.
-- Parameters: none
-- Output: selection_id, dataset, question_id, trajectory_id, problem
SELECT r.selection_id, r.dataset, r.question_id, r.trajectory_id,
       'row of an unknown selection' AS problem
FROM selection_rows r
ANTI JOIN selections s USING (selection_id)
