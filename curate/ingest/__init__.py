"""Teacher runs into the store: `job.py` (each file one transaction, rejects kept with reasons),
`formats.py` (smolagents / agent-distillation logs, HF datasets, chat JSONL, MINT, JSONPath),
`sources.py` (plain, .gz and .zst JSONL, HF folders and parquet, in batches), `synth.py`
(deterministic synthetic runs for real questions, labelled synthetic)."""

from .job import IngestError, IngestOptions, IngestSummary, ingest

__all__ = ["IngestError", "IngestOptions", "IngestSummary", "ingest"]
