"""Student NLL of every stored trajectory (`curate score`).

`job.py` runs a scoring job (its identity, pending work, parts, take-in) as `config.py` sets it;
`student.py` loads the student and identifies its weights and tokenizer; `blocks.py` renders and
scores a block of trajectories into one parquet part; `nll.py` computes supervised-token NLLs in
bounded memory, with `prefix.py` planning the shared prefixes computed once; `vllm.py` is the vLLM
scorer; `cluster.py` scores the blocks on a Ray cluster. Models come from `curate.engine`.
"""

from .blocks import rendered_chats, renderings
from .config import ScoreConfig, parse_shard
from .job import ScoreResult, identify, nll_extremes, parts_dir, score, score_store, shard_of, take_in
from .student import PROBE, tokenizer_hash, weights_hash

__all__ = [
    "PROBE",
    "ScoreConfig",
    "ScoreResult",
    "identify",
    "nll_extremes",
    "parse_shard",
    "parts_dir",
    "rendered_chats",
    "renderings",
    "score",
    "score_store",
    "shard_of",
    "take_in",
    "tokenizer_hash",
    "weights_hash",
]
