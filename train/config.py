"""The trainer's configuration: one frozen dataclass, its CLI options generated from its fields.

Kept free of torch so that `curate --help` stays fast. Defaults are the paper's (DESIGN
"Training defaults"): LoRA r 64 / alpha 128 / dropout 0.05 on all linear layers, AdamW at 2e-4,
2 epochs, effective batch 4, max length 10,240, gradient checkpointing.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, field, fields

from curate.cli.bounds import COUNT, NON_NEGATIVE, POSITIVE, Number
from curate.render.markers import profile

RATIO = Number(float, 0, 1)
DROPOUT = Number(float, 0, 1, open_high=True)


def _opt(text: str, **meta) -> dict:
    return {"help": text, **meta}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; written resolved to OUT/train_config.json."""

    data: str = field(metadata=_opt("exported data set: a save_to_disk folder, a parquet file or a folder of them"))
    student: str = field(
        metadata=_opt("student model: a local checkpoint folder or a built-in name (tiny, smollm2, ...)")
    )
    out: str = field(metadata=_opt("output folder: adapter, config, log, checkpoints, loss curves"))
    loss: str = field(default="smartad", metadata=_opt("smartad | uniform | sad | custom:R,A,F | sad_kl[:LR,LA]"))
    teacher: str | None = field(default=None, metadata=_opt("teacher model folder (sad_kl only)", type=str))
    profile: str | None = field(
        default=None,
        metadata=_opt(
            "marker profile for every row, overriding the export's `profile` column (default: each row's own; "
            "smolagents for rows without one)",
            type=str,
        ),
    )
    epochs: int = field(default=2, metadata=_opt("passes over the data", type=COUNT))
    max_steps: int | None = field(
        default=None,
        metadata=_opt("optimiser steps in all (overrides --epochs; the LR schedule spans them)", type=COUNT),
    )
    lr: float = field(default=2e-4, metadata=_opt("AdamW peak learning rate", type=POSITIVE))
    weight_decay: float = field(default=0.0, metadata=_opt("AdamW weight decay", type=NON_NEGATIVE))
    warmup_ratio: float = field(
        default=0.03, metadata=_opt("share of steps with linear warm-up (then cosine to 0)", type=RATIO)
    )
    max_grad_norm: float = field(default=1.0, metadata=_opt("gradient clipping norm", type=POSITIVE))
    batch_size: int = field(default=4, metadata=_opt("trajectories per optimiser step, all ranks together", type=COUNT))
    micro_batch_size: int = field(default=1, metadata=_opt("trajectories per forward pass (per rank)", type=COUNT))
    max_length: int = field(default=10240, metadata=_opt("tokens per trajectory at most", type=COUNT))
    truncation: str = field(
        default="end", metadata=_opt("too-long rows: `end` keeps the first max_length tokens, `drop` skips the row")
    )
    lora_r: int = field(default=64, metadata=_opt("LoRA rank", type=COUNT))
    lora_alpha: int = field(default=128, metadata=_opt("LoRA alpha", type=COUNT))
    lora_dropout: float = field(default=0.05, metadata=_opt("LoRA dropout", type=DROPOUT))
    target_modules: str = field(
        default="all-linear", metadata=_opt("LoRA targets: all-linear or comma-separated module names")
    )
    gradient_checkpointing: bool = field(default=True, metadata=_opt("recompute activations in backward"))
    precision: str = field(default="auto", metadata=_opt("auto (bf16 on a bf16 GPU, else fp32) | bf16 | fp32"))
    chunk_size: int = field(default=1024, metadata=_opt("positions per output-head chunk of the loss", type=COUNT))
    seed: int = field(default=0, metadata=_opt("seed for LoRA init, dropout and data order"))
    save_every: int = field(
        default=50, metadata=_opt("checkpoint every N optimiser steps (and at the end)", type=COUNT)
    )

    def __post_init__(self) -> None:
        if self.truncation not in ("end", "drop"):
            raise ValueError(f"--truncation {self.truncation!r}: expected end or drop")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"--precision {self.precision!r}: expected auto, bf16 or fp32")
        for name in ("epochs", "batch_size", "micro_batch_size", "max_length", "lora_r", "chunk_size", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.profile is not None:
            profile(self.profile)
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"--max-steps must be at least 1, got {self.max_steps}")

    @property
    def targets(self) -> str | list[str]:
        """LoRA target modules in peft's form."""
        if self.target_modules == "all-linear":
            return "all-linear"
        return [m.strip() for m in self.target_modules.split(",") if m.strip()]


def add_options(parser: argparse.ArgumentParser, config: type = TrainConfig) -> None:
    """One `--field-name` option per dataclass field, with its default and help."""
    for f in fields(config):
        flag = "--" + f.name.replace("_", "-")
        meta = dict(f.metadata)
        if f.default is MISSING:
            parser.add_argument(flag, dest=f.name, required=True, **meta)
        elif isinstance(f.default, bool):
            parser.add_argument(flag, dest=f.name, default=f.default, action=argparse.BooleanOptionalAction, **meta)
        else:
            meta.setdefault("type", type(f.default))
            meta["help"] += f" (default: {f.default})"
            parser.add_argument(flag, dest=f.name, default=f.default, **meta)


def from_args(args: argparse.Namespace, config: type = TrainConfig):
    """The dataclass built from parsed options."""
    return config(**{f.name: getattr(args, f.name) for f in fields(config)})
