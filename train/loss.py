"""The segment-weighted loss, computed chunk by chunk from hidden states.

Every preset is linear in the per-token terms: L = Σ_s c_s · S_s, where S_s is the sum of the
per-token terms (cross-entropy, or KL to a teacher for `sad_kl`) over segment s and the
coefficients c_s depend only on how many tokens of each segment the optimiser step holds:

- weighted presets (`smartad` 1/1.5/2, `uniform` 1/1/1, `custom:R,A,F`): c_s = w_s / Σ_s' w_s'·N_s',
  i.e. L = Σ w·ℓ / Σ w (DESIGN Eq. 5);
- `sad`, the cross-entropy approximation of SAD: c_reason = ½ / N_reason and
  c_action = c_final = ½ / (N_action + N_final), the equal-weight average of the two group means;
- `sad_kl` (SAD's own loss, needs `--teacher`): the same group means of the per-token
  KL(teacher ‖ student) on the common vocabulary range, weighted λ_r / λ_a (`sad_kl:R,A`, default ½, ½).
An empty group contributes nothing (its mean over no tokens is taken as 0).

The counts are known from the labels before any forward pass, so the trainer computes c once per
step (all micro-batches, all ranks) and back-propagates c·S micro-batch by micro-batch: the
gradient is that of Σ w·ℓ / Σ w over the whole step, divided once, without holding every
micro-batch's graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..render.segments import SEGMENTS, UNSUPERVISED

PRESETS = {"smartad": (1.0, 1.5, 2.0), "uniform": (1.0, 1.0, 1.0)}
SAD_LAMBDAS = (0.5, 0.5)


@dataclass(frozen=True)
class LossSpec:
    """A parsed `--loss`: per-segment weights, or per-group lambdas for the SAD variants."""

    name: str
    weights: tuple[float, float, float]
    group_means: bool = False  # SAD: λ_r·mean(reason) + λ_a·mean(action ∪ final)
    distill: bool = False  # per-token term is KL to the teacher instead of cross-entropy

    @property
    def weighs_segments(self) -> bool:
        """Whether the loss treats reason, action and final tokens differently."""
        return self.group_means or len(set(self.weights)) > 1

    def coefficients(self, counts: Tensor) -> Tensor:
        """c such that the step's loss is Σ_s c_s·S_s, from the step's per-segment token counts."""
        w = torch.tensor(self.weights, dtype=torch.float64, device=counts.device)
        counts = counts.to(torch.float64)
        if not self.group_means:
            total = (w * counts).sum()
            return (w / total if total > 0 else torch.zeros_like(w)).float()
        groups = torch.stack([counts[0], counts[1] + counts[2], counts[1] + counts[2]])
        return torch.where(groups > 0, w / groups.clamp_min(1), torch.zeros_like(w)).float()

    def combine(self, sums: Tensor, counts: Tensor) -> Tensor:
        """The loss value from per-segment sums and counts of one whole step."""
        return (self.coefficients(counts).to(sums.device) * sums).sum()


def _floats(text: str, n: int, spec: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != n or any(v < 0 for v in values) or not any(values):
        raise ValueError(f"--loss {spec!r}: expected {n} comma-separated non-negative numbers, not all 0")
    return values


def parse_loss(spec: str) -> LossSpec:
    """Parse `smartad`, `uniform`, `sad`, `custom:R,A,F`, `sad_kl` or `sad_kl:LR,LA`."""
    name, _, args = spec.partition(":")
    if name in PRESETS and not args:
        return LossSpec(name, PRESETS[name])
    if name == "custom" and args:
        reason, action, final = _floats(args, 3, spec)
        return LossSpec(spec, (reason, action, final))
    if name in ("sad", "sad_kl"):
        if args and name == "sad":
            raise ValueError("--loss sad takes no arguments (it is the equal-weight average); use sad_kl:LR,LA")
        lam_r, lam_a = _floats(args, 2, spec) if args else SAD_LAMBDAS
        return LossSpec(spec, (lam_r, lam_a, lam_a), group_means=True, distill=name == "sad_kl")
    raise ValueError(f"unknown --loss {spec!r} (known: {', '.join(PRESETS)}, sad, custom:R,A,F, sad_kl[:LR,LA])")


def _ce(head: nn.Module, hidden: Tensor, targets: Tensor) -> Tensor:
    return F.cross_entropy(head(hidden).float(), targets, reduction="none")


def _kl(head: nn.Module, hidden: Tensor, teacher_head: nn.Module, teacher_hidden: Tensor) -> Tensor:
    # Compare on the vocabulary range both heads share (a 32B teacher's 152,064 rows vs a
    # student's 151,936), renormalised over that range.
    student = head(hidden).float()
    with torch.no_grad():
        teacher = teacher_head(teacher_hidden).float()
    common = min(student.shape[-1], teacher.shape[-1])
    log_p = F.log_softmax(teacher[:, :common], dim=-1)
    log_q = F.log_softmax(student[:, :common], dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def token_terms(
    head: nn.Module,
    hidden: Tensor,
    targets: Tensor,
    chunk: int,
    teacher: tuple[nn.Module, Tensor] | None = None,
) -> Tensor:
    """Per-token CE of targets (or KL to the teacher's (head, hidden)), `chunk` positions at a time.

    Each chunk's logits are recomputed in the backward pass (activation checkpointing), so at
    most one chunk of full-vocabulary fp32 logits is alive at a time, forward or backward.
    """
    parts = []
    for i in range(0, hidden.shape[0], chunk):
        h = hidden[i : i + chunk]
        if teacher is None:
            parts.append(checkpoint(_ce, head, h, targets[i : i + chunk], use_reentrant=False))
        else:
            t_head, t_hidden = teacher
            parts.append(checkpoint(_kl, head, h, t_head, t_hidden[i : i + chunk], use_reentrant=False))
    return torch.cat(parts) if parts else hidden.new_zeros(0, dtype=torch.float32)


def shifted(segments: Tensor) -> Tensor:
    """The segment of the token each position predicts (position t predicts token t+1)."""
    return segments[:, 1:]


def segment_counts(segments: Tensor) -> Tensor:
    """Supervised target tokens per segment (reason, action, final) of a batch."""
    target = shifted(segments)
    return torch.bincount(target[target != UNSUPERVISED].flatten(), minlength=len(SEGMENTS))


class CausalLM(Protocol):
    """What the objective uses of a model: a transformers causal LM, or PEFT's wrapper of one."""

    def get_decoder(self) -> nn.Module: ...

    def get_output_embeddings(self) -> nn.Module: ...


class SegmentObjective(nn.Module):
    """Per-segment sums of the per-token loss terms of a batch; the module DDP wraps.

    Runs the decoder for hidden states, keeps the positions whose next token is supervised, and
    applies the output head only there, chunked: observation and prompt tokens never reach the
    vocabulary projection.
    """

    def __init__(self, model: CausalLM, chunk: int = 1024, teacher: CausalLM | None = None):
        super().__init__()
        self.model, self.chunk, self.teacher = model, chunk, teacher

    def forward(self, input_ids: Tensor, segments: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        target = shifted(segments)
        keep = target != UNSUPERVISED
        hidden = self.model.get_decoder()(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False
        ).last_hidden_state
        selected = hidden[:, :-1][keep]
        teacher = None
        if self.teacher is not None:
            with torch.no_grad():
                t_hidden = self.teacher.get_decoder()(
                    input_ids=input_ids, attention_mask=attention_mask, use_cache=False
                ).last_hidden_state
            teacher = (self.teacher.get_output_embeddings(), t_hidden[:, :-1][keep])
        terms = token_terms(self.model.get_output_embeddings(), selected, input_ids[:, 1:][keep], self.chunk, teacher)
        return torch.zeros(len(SEGMENTS), device=terms.device).index_add(0, target[keep], terms)
