"""The settings of one `curate score` invocation (`ScoreConfig`), checked where they are made."""

from __future__ import annotations

from dataclasses import dataclass

from .nll import DEFAULT_CHUNK_BYTES

BACKENDS = ("transformers", "vllm")


@dataclass(frozen=True)
class ScoreConfig:
    """Settings of one `curate score` invocation (written into scoring_runs.config)."""

    db: str
    student: str
    dataset: str | None = None
    device: str = "cpu"
    dtype: str = "float32"
    max_length: int | None = None  # None: the model's max_position_embeddings
    batch_tokens: int | None = None  # padded tokens per forward pass (None: the device's default)
    shard: tuple[int, int] = (0, 1)
    backend: str = "transformers"
    pack: bool = False  # one row per batch, position ids restarting per sequence
    part_size: int = 256  # trajectories per parquet part
    chunk_bytes: int = DEFAULT_CHUNK_BYTES  # float32 logits buffer of the chunked LM head
    prefix_reuse: bool = True  # score suffixes against the cache of shared prefixes
    progress: bool = True
    ifd: bool = False  # then IFD's alone pass over the run's trajectories
    ray: str | None = None  # a Ray cluster's address (local, auto, host:port): blocks scored on its workers
    workers: int | None = None  # Ray workers (default: one per GPU of the cluster, else one per node)

    def __post_init__(self) -> None:
        # On CPU a batch of one ~2k-token trajectory already keeps the matrix units busy; bigger
        # batches only add allocation churn (page faults) and padding (bench/score_real.py).
        if self.batch_tokens is None:
            object.__setattr__(self, "batch_tokens", 16384 if self.device.startswith("cuda") else 2048)
        for option, value, least in (
            ("--max-length", self.max_length, 2),
            ("--batch-tokens", self.batch_tokens, 1),
            ("--part-size", self.part_size, 1),
            ("--chunk-bytes", self.chunk_bytes, 1),
        ):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                raise ValueError(f"{option} {value!r}: need a whole number of at least {least}")
        index, count = self.shard
        if not 0 <= index < count:
            raise ValueError(f"--shard {index}/{count}: need 0 <= I < N")
        if self.backend not in BACKENDS:
            raise ValueError(f"--backend {self.backend!r}: expected one of {', '.join(BACKENDS)}")


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` (0 <= I < N) -> (I, N)."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    if not 0 <= index < count:
        raise ValueError(f"--shard {text!r}: need 0 <= I < N")
    return index, count
