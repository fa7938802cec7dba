-- Two stored selections side by side: how often they agree and what each one chose.
-- Parameters: $a VARCHAR, $b VARCHAR (selection ids)
-- Output: one row per selection ($a first): selection_id, policy, run_id, questions, selected,
--         same_trajectory (questions where both chose the same trajectory), mean_nll (under each
--         selection's own run), mean_assistant_chars, mean_tool_calls, mean_turns
WITH picked AS (
    SELECT r.selection_id, r.dataset, r.question_id, r.trajectory_id, r.nll,
           t.assistant_chars, t.tool_calls, t.assistant_turns
    FROM selection_rows r
    LEFT JOIN trajectories t USING (trajectory_id)
    WHERE r.selection_id IN ($a, $b)
),
agree AS (
    -- questions both selections answered with one and the same trajectory
    SELECT count(*) AS same_trajectory
    FROM picked a
    JOIN picked b USING (dataset, question_id, trajectory_id)
    WHERE a.selection_id = $a AND b.selection_id = $b
),
per_selection AS (
    SELECT selection_id,
           count(*) AS questions,
           count(trajectory_id) AS selected,
           avg(nll) AS mean_nll,
           avg(assistant_chars) AS mean_assistant_chars,
           avg(tool_calls) AS mean_tool_calls,
           avg(assistant_turns) AS mean_turns
    FROM picked
    GROUP BY selection_id
)
SELECT p.selection_id, s.policy, s.run_id, p.questions, p.selected, agree.same_trajectory,
       p.mean_nll, p.mean_assistant_chars, p.mean_tool_calls, p.mean_turns
FROM per_selection p
JOIN selections s USING (selection_id)
CROSS JOIN agree
ORDER BY p.selection_id <> $a
