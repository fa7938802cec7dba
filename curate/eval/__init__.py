"""Student evaluation: pass@1 as a CodeAct agent on the paper's benchmarks (Table 2).

benchmarks.py  benchmark names -> question files; the system prompt a student was trained with
evaluate.py    `curate eval`: one `curate generate` run per benchmark (K = 1, temperature 0), graded
tables.py      Table 2 from the eval_runs table: Markdown, CSV, LaTeX
outputs.py     results.json, predictions.jsonl and the tables of an eval run
"""
