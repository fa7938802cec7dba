"""The student a scoring job loads: its backend, the probe it is checked on, and the hashes that
identify its weights and tokenizer in a run's id (the same on the driver and every worker)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from ..models.files import cache_dir
from ..render import chat_messages
from .config import ScoreConfig
from .nll import TransformersBackend

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")

# A chat exercising what agent logs hold (code, unicode, observations, several turns): the
# prefix property and the LM head are checked on it once per run.
PROBE = chat_messages(
    [
        ("system", "You are an expert assistant who can solve any task using code blobs."),
        ("user", "New task:\nWhich city hosts the Louvre? Café, naïve, 東京, 🙂."),
        ("assistant", 'Thought: search.\nCode:\n```py\nprint(web_search(query="Louvre"))\n```<end_code>'),
        ("tool-response", "Call id: call_1\nObservation:\nThe Louvre is in Paris.\n\n"),
        ("assistant", 'Thought: Paris.  \nCode:\n```py\nfinal_answer("Paris")\n```<end_code>  '),
        ("tool-response", "Call id: call_2\nObservation:\nParis"),
        ("assistant", "Paris 🙂"),
    ]
)

# The backend's check scores this much of the probe: a scaled head or a misplaced prefix shows in
# 64 tokens as in the probe's 168, and each token of it is start-up time (0.8 s less on SmolLM2).
CHECK_TOKENS = 64


def sha256_hex(data: bytes) -> str:
    """The sha256 of `data`, in hex."""
    return hashlib.sha256(data).hexdigest()


def write_atomically(file: Path, text: str) -> None:
    """Write under a temp name and rename it: a reader never sees half a file."""
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, file)


def weights_hash(path: Path) -> str:
    """sha256 over the names and bytes of the weight files in a model folder.

    Remembered in the cache folder under the files' path, size, mtime and inode, so a run does not
    read the whole checkpoint again (sha256 takes ~1 s a GB here); a file rewritten is hashed anew."""
    files = sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"{path}: no weight files ({', '.join(WEIGHT_SUFFIXES)})")
    stats = [(str(f.resolve()), f.stat()) for f in files]
    state = [(name, s.st_size, s.st_mtime_ns, s.st_ino, s.st_dev) for name, s in stats]
    memo = cache_dir() / "weights-sha256" / sha256_hex(json.dumps(state).encode())
    try:
        known = memo.read_text()
    except (OSError, UnicodeDecodeError):  # none yet, or unreadable: hash the files
        known = ""
    if re.fullmatch("[0-9a-f]{64}", known):
        return known
    h = hashlib.sha256()
    for file in files:
        h.update(file.name.encode() + b"\0")
        with file.open("rb") as f:
            while block := f.read(1 << 24):
                h.update(block)
    try:  # a cache folder that cannot be written only costs the next run the hashing
        memo.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(memo, h.hexdigest())
    except OSError:
        pass
    return h.hexdigest()


def tokenizer_hash(tokenizer: Any) -> str:
    """sha256 of the tokenizer's full definition, its special tokens and its chat template."""
    parts = [
        tokenizer.backend_tokenizer.to_str(),
        json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str),
        str(tokenizer.chat_template),
    ]
    return sha256_hex("\0".join(parts).encode())


def make_backend(config: ScoreConfig, path: Path, max_length: int) -> Any:
    """The scoring engine named by `config.backend`."""
    if config.backend == "vllm":
        from .vllm import VllmBackend

        return VllmBackend(str(path), config.dtype, max_length)
    assert config.batch_tokens is not None  # __post_init__ puts the device's default in place of None
    return TransformersBackend(
        str(path),
        config.device,
        config.dtype,
        config.batch_tokens,
        config.chunk_bytes,
        config.pack,
        config.prefix_reuse,
    )
