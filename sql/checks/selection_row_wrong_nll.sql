-- Audit: a selection row whose chosen trajectory has no score in the selection's scoring run,
-- or whose stored NLL differs from that run's trajectory NLL. Must return no rows.
-- Parameters: none
-- Output: selection_id, dataset, question_id, trajectory_id, problem
SELECT r.selection_id, r.dataset, r.question_id, r.trajectory_id,
       CASE WHEN n.trajectory_id IS NULL THEN 'chosen trajectory is not scored in the selection''s run'
            ELSE 'stored nll ' || coalesce(CAST(r.nll AS VARCHAR), 'NULL') || ' differs from the run''s ' || n.nll
       END AS problem
FROM selection_rows r
JOIN selections s USING (selection_id)
LEFT JOIN trajectory_nll n ON n.run_id = s.run_id AND n.trajectory_id = r.trajectory_id
WHERE r.trajectory_id IS NOT NULL
  AND (n.trajectory_id IS NULL OR r.nll IS NULL OR abs(r.nll - n.nll) > 1e-9 * greatest(1, abs(n.nll)))
