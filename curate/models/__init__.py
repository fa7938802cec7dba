"""Resolve `--student` values: a local checkpoint folder or a built-in name.

The built-in students are built by the modules of this package (`tiny`, `smollm2`,
`qwen_tokenizer`) on top of `files`; this resolver sits above them and imports them lazily, so
resolving a path never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .files import INSTALL_HINT, cache_dir, materialise, package_file

__all__ = [
    "BUILTIN",
    "INSTALL_HINT",
    "TINY",
    "cache_dir",
    "check_student",
    "is_tiny_random",
    "materialise",
    "package_file",
    "resolve_student",
    "student_key",
]


def _tiny(tokenizer: str) -> Callable[[], Path]:
    def build() -> Path:
        from .tiny import write_tiny_model

        name = "tiny" if tokenizer == "small" else f"tiny-{tokenizer}"
        return materialise(cache_dir() / name, lambda out: write_tiny_model(out, tokenizer=tokenizer))

    return build


def _smollm2(dtype: str) -> Callable[[], Path]:
    def build() -> Path:
        from .smollm2 import materialise_smollm2

        return materialise_smollm2(dtype)

    return build


TINY = ("tiny", "tiny-qwen2.5")
# float32 is the reference on CPU (exact against the GGUF); bf16 halves memory on a GPU.
BUILTIN = {
    TINY[0]: _tiny("small"),
    TINY[1]: _tiny("qwen2.5"),
    "smollm2": _smollm2("float32"),
    "smollm2-bf16": _smollm2("bfloat16"),
}


def student_key(spec: str) -> str:
    """How a student is recorded in scoring_runs: a built-in name as is, a path made absolute."""
    return spec if spec in BUILTIN else str(Path(spec).expanduser().resolve())


def is_tiny_random(student: str) -> bool:
    """Whether a student (a built-in name or a model folder) is a tiny randomly initialised model."""
    from .tiny import MARKER

    return student in TINY or (Path(student).expanduser() / MARKER).is_file()


def check_student(spec: str) -> None:
    """Fail now, building and loading nothing, when `spec` is neither a built-in name nor a model folder."""
    if spec not in BUILTIN and not (Path(spec).expanduser() / "config.json").is_file():
        raise FileNotFoundError(
            f"--student {spec!r}: not a model folder (no config.json) and not a built-in name "
            f"({', '.join(BUILTIN)}); point it at any local checkpoint, e.g. a downloaded "
            "Qwen2.5-1.5B-Instruct folder"
        )


def resolve_student(spec: str) -> Path:
    """A folder that `from_pretrained` loads: the path given, or a built-in model materialised once."""
    check_student(spec)
    return BUILTIN[spec]() if spec in BUILTIN else Path(spec).expanduser()
