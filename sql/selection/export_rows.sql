-- The chosen trajectories of one selection, with the columns an export carries beside the messages.
-- Parameters: $selection_id VARCHAR
-- Output: question_id, dataset, trajectory_id, sample_idx, nll, n_turns (assistant turns after
--         the role mapping), policy, student, k, profile (the trajectory's marker profile, which
--         the trainer needs to find action and final spans); questions without a trajectory are left out
SELECT r.question_id, r.dataset, r.trajectory_id, t.sample_idx, r.nll,
       t.assistant_turns AS n_turns,
       s.policy, sr.student, s.k, t.profile
FROM selection_rows r
JOIN selections s USING (selection_id)
JOIN trajectories t USING (trajectory_id)
LEFT JOIN scoring_runs sr ON sr.run_id = s.run_id
WHERE r.selection_id = $selection_id AND r.trajectory_id IS NOT NULL
ORDER BY r.dataset, r.question_id
