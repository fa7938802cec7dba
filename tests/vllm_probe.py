"""Run generation requests through the offline vLLM backend, in `.venv-vllm`:
`python tests/vllm_probe.py MODEL REQUESTS.json OUT.json` (a list of GenRequest fields in, a list of
Completion fields out). vLLM starts engine processes, hence the `__main__` guard."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from curate.agent.backends import GenRequest
from curate.agent.backends.vllm import VLLMBackend

if __name__ == "__main__":
    model, requests, out = sys.argv[1:]
    backend = VLLMBackend(model, dtype="float32", max_model_len=4096)
    fields = json.loads(Path(requests).read_text())
    done = backend.generate([GenRequest(**{**f, "messages": tuple(f["messages"]), "stop": tuple(f["stop"])})
                             for f in fields])
    Path(out).write_text(json.dumps([asdict(c) for c in done]))
    backend.close()
