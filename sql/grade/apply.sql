-- Set correct, clean and graded_by of trajectories from the registered relation _grade_apply
-- (trajectory_id, correct, clean, graded_by), which curate/grade/store.py computes from verdicts
-- with the one clean rule (curate.ingest.formats.is_clean).
UPDATE trajectories t
SET correct = a.correct, clean = a.clean, graded_by = a.graded_by
FROM _grade_apply a
WHERE t.trajectory_id = a.trajectory_id;
