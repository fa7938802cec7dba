-- Mark a grading run finished with its counts.
-- Params: $grading_run, $graded, $kept, $no_gold, $correct.
UPDATE grading_runs
SET finished_at = now()::TIMESTAMP, graded = $graded, kept = $kept, no_gold = $no_gold, correct = $correct
WHERE grading_run = $grading_run;
