-- Where the chosen trajectories of one selection came from: file, format and teacher.
-- Parameters: $selection_id VARCHAR
-- Output: source_file, file_hash (NULL when the ingest run is gone), format, teacher_model,
--         trajectories (chosen ones from that file and teacher)
SELECT t.source_file, i.file_hash, i.format, t.teacher_model,
       count(*) AS trajectories
FROM selection_rows r
JOIN trajectories t USING (trajectory_id)
LEFT JOIN ingest_runs i USING (ingest_id)
WHERE r.selection_id = $selection_id
GROUP BY ALL
ORDER BY t.source_file, t.teacher_model
