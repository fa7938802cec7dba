-- The report's selections side by side: what each chose, on average (one pass for all of them;
-- sql/selection/compare.sql gives the same numbers for a pair).
-- Parameters: $ids VARCHAR[] (selection ids)
-- Output: selection_id, policy, questions, selected, mean_nll (under the selection's own run),
--         mean_assistant_chars, mean_tool_calls, mean_turns; in the order of $ids
SELECT r.selection_id,
       any_value(s.policy)       AS policy,
       count(*)                  AS questions,
       count(r.trajectory_id)    AS selected,
       avg(r.nll)                AS mean_nll,
       avg(t.assistant_chars)    AS mean_assistant_chars,
       avg(t.tool_calls)         AS mean_tool_calls,
       avg(t.assistant_turns)    AS mean_turns
FROM selection_rows r
JOIN selections s USING (selection_id)
LEFT JOIN trajectories t USING (trajectory_id)
WHERE r.selection_id IN (SELECT unnest($ids))
GROUP BY r.selection_id
ORDER BY list_position($ids, r.selection_id)
