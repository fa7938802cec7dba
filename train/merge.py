"""Fold a trained LoRA adapter into its base model: a folder plain transformers loads."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class MergeConfig:
    """What `curate merge` depends on; written resolved to OUT/merge_config.json."""

    adapter: str
    out: str
    base: str | None = None  # default: the base recorded in the adapter's adapter_config.json


def merge(cfg: MergeConfig) -> Path:
    """Load base + adapter, merge the LoRA deltas into the weights, save model and tokenizer."""
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = Path(cfg.adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(f"--adapter {adapter}: no adapter_config.json (not a peft adapter folder)")
    base = cfg.base or PeftConfig.from_pretrained(str(adapter)).base_model_name_or_path
    if not (Path(base) / "config.json").is_file():
        raise FileNotFoundError(f"base model {base}: no config.json (moved? pass --base PATH)")
    model = AutoModelForCausalLM.from_pretrained(base, dtype="auto")
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    out = Path(cfg.out)
    merged.save_pretrained(out)
    AutoTokenizer.from_pretrained(adapter if (adapter / "tokenizer_config.json").is_file() else base).save_pretrained(
        out
    )
    (out / "merge_config.json").write_text(json.dumps({**asdict(cfg), "base": str(base)}, indent=2) + "\n")
    # The training record (with the system prompt the data opened with) travels with the weights.
    if (adapter / "train_config.json").is_file():
        shutil.copyfile(adapter / "train_config.json", out / "train_config.json")
    return out
