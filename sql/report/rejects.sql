-- Ingest rejects per data set and reason, for the report's store summary.
-- Parameters: none
-- Output: dataset, reason (as stored: it names the field that failed), rejects, files (distinct
--         source files), first_line (the lowest source line with that reason, to look it up)
SELECT i.dataset,
       r.reason,
       count(*)                      AS rejects,
       count(DISTINCT r.source_file) AS files,
       min(r.source_line)            AS first_line
FROM ingest_rejects r
JOIN ingest_runs i USING (ingest_id)
GROUP BY i.dataset, r.reason
ORDER BY i.dataset, rejects DESC, r.reason
