"""The SmartAD segment-weighted loss inside TRL's `SFTTrainer`, for a `curate export --tokenized` data set.

TRL (1.16) already trains such rows on exactly the tokens curate scores: the rows carry `input_ids`
and `completion_mask`, and under `completion_only_loss=True` the labels are -100 wherever the mask
is 0, whatever the chat template. What TRL lacks is a per-token weight, so this module adds the
thinnest hook its API allows: a subclass overriding `compute_loss` (the deprecated
`compute_loss_func` sees neither the rows' `segments` nor the whole optimiser step), which

- keeps the `segments` column in each batch (0 none, 1 reason, 2 action, 3 final; the collator
  TRL builds pads it),
- weights TRL's own per-token log-probabilities (its fused LM head, no full logits) by segment,
- and divides by Σw of the whole optimiser step: `get_batch_samples` returns Σw where Trainer would
  count supervised tokens (`num_items_in_batch`), so under gradient accumulation every micro-batch
  divides by the same Σw, L = Σ w·ℓ / Σ w (DESIGN Eq. 5), as `curate train` does.

With `loss="uniform"` it is TRL's own loss. The SAD variants (per-group means) are not token
weights; `curate train --loss sad` runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from trl import SFTConfig, SFTTrainer

from .loss import parse_loss

SEGMENTS_COLUMN = "segments"


def segment_weights(loss: str) -> torch.Tensor:
    """Weight per segment code (0 none, 1 reason, 2 action, 3 final) of a `--loss` spec."""
    spec = parse_loss(loss)
    if spec.group_means:
        raise ValueError(f"loss {loss!r} averages per segment group, it is not a token weight; use curate train for it")
    return torch.tensor((0.0, *spec.weights))


def target_weights(labels: torch.Tensor, segments: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The weight of each prediction target, aligned with `labels[:, 1:]` (0 where the label is -100)."""
    target = weights.to(segments.device)[segments[:, 1:]]
    return torch.where(labels[:, 1:] != -100, target, torch.zeros_like(target))


class SegmentCollator:
    """TRL's collator, plus the rows' `segments` cut as TRL cut their tokens and right-padded with 0."""

    def __init__(self, collator: Callable, keep_end: bool):
        self.collator, self.keep_end = collator, keep_end

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collator([{k: v for k, v in e.items() if k != SEGMENTS_COLUMN} for e in examples])
        segments = torch.zeros_like(batch["input_ids"])
        for row, example in enumerate(examples):
            n = len(example["input_ids"])
            kept = example[SEGMENTS_COLUMN][-n:] if self.keep_end else example[SEGMENTS_COLUMN][:n]
            segments[row, :n] = torch.as_tensor(kept)
        batch[SEGMENTS_COLUMN] = segments
        return batch


class SegmentWeightedSFTTrainer(SFTTrainer):
    """`trl.SFTTrainer` with the segment-weighted loss: `loss` is `smartad` (1 / 1.5 / 2), `uniform`
    or `custom:R,A,F`; the train data needs `input_ids`, `completion_mask` and `segments`."""

    def __init__(self, *args: Any, loss: str = "smartad", **kwargs: Any):
        config = kwargs.get("args")
        if config is not None and (config.packing or config.padding_free):
            raise ValueError(
                "the segment-weighted loss needs one row per sequence: set packing=False, padding_free=False"
            )
        self.segment_weights = segment_weights(loss)
        super().__init__(*args, **kwargs)
        assert isinstance(self.args, SFTConfig)  # SFTTrainer turns any TrainingArguments into an SFTConfig
        self.data_collator: SegmentCollator = SegmentCollator(
            self.data_collator, self.args.truncation_mode == "keep_end"
        )
        # compute_loss divides by the step's Σw itself; Trainer must not divide again by the accumulation steps.
        self.loss_is_scaled_for_ga = True  # type: ignore[assignment]  # TRL's base leaves it typed None

    def _set_signature_columns_if_needed(self) -> None:
        # The columns a batch keeps (TRL overrides this too); `segments` rides along to compute_loss.
        super()._set_signature_columns_if_needed()
        columns: list[str] = self._signature_columns
        if SEGMENTS_COLUMN not in columns:
            self._signature_columns = [*columns, SEGMENTS_COLUMN]

    def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: torch.device) -> tuple[list, Any]:
        """The step's micro-batches and their Σw (all ranks), in place of their supervised-token count."""
        batches, _count = super().get_batch_samples(epoch_iterator, num_batches, device)
        total = sum(
            (target_weights(b["labels"], b[SEGMENTS_COLUMN], self.segment_weights).sum() for b in batches),
            torch.tensor(0.0),
        )
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            total = self.accelerator.gather(total.to(device)).sum()
        return batches, total.to(device)

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        """Σ w·ℓ over the batch's targets divided by the step's Σw (evaluation: the batch's own Σw)."""
        segments = inputs.pop(SEGMENTS_COLUMN)
        outputs = model(**inputs, use_cache=False, fused_lm_head=True)
        weights = target_weights(inputs["labels"], segments, self.segment_weights).to(outputs.log_probs.dtype)
        training = self.model is not None and self.model.training and num_items_in_batch is not None
        total = num_items_in_batch if training else weights.sum()
        loss = -(weights * outputs.log_probs).sum() / torch.as_tensor(total).clamp(min=1e-12)
        if training and self.args.average_tokens_across_devices:
            # Σw spans every rank and DDP averages the gradients: undo the average, as TRL does for counts.
            loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss
