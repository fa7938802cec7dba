"""The weighted loss against the model's own loss and independent full-logit computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from train_rows import smolagents_chat

from curate.models.tiny import build_model
from curate.render.markers import PROFILES
from curate.render.segments import label_segments
from curate.train.data import collate
from curate.train.loss import SegmentObjective, parse_loss, segment_counts


@pytest.fixture(scope="module")
def examples(tiny_tokenizer):
    chats = [smolagents_chat(3), smolagents_chat(12345)]
    return [label_segments(tiny_tokenizer, c, PROFILES["smolagents"]) for c in chats]


def batch(examples, tokenizer):
    return collate(examples, tokenizer.pad_token_id)


def ours(model, b, spec, chunk=7, teacher=None):
    sums = SegmentObjective(model, chunk, teacher)(b["input_ids"], b["segments"], b["attention_mask"])
    return spec.combine(sums, segment_counts(b["segments"]))


def reference(model, examples, per_token_weight, teacher=None):
    """Σ w·ℓ / Σ w by a plain loop over full-vocabulary logits, one example at a time."""
    terms = []
    for e in examples:
        ids = torch.tensor([e.input_ids])
        logp = F.log_softmax(model(input_ids=ids).logits[0].double(), -1)
        if teacher is not None:
            t_logits = teacher(input_ids=ids).logits[0].double()
            common = min(logp.shape[-1], t_logits.shape[-1])
            logq = F.log_softmax(model(input_ids=ids).logits[0].double()[:, :common], -1)
            logt = F.log_softmax(t_logits[:, :common], -1)
        for t in range(1, len(e.input_ids)):
            seg = e.segments[t]
            if seg < 0:
                continue
            if teacher is None:
                term = -logp[t - 1, e.input_ids[t]]
            else:
                term = (logt[t - 1].exp() * (logt[t - 1] - logq[t - 1])).sum()
            terms.append((seg, term))
    return per_token_weight(terms)


def weighted(w):
    def f(terms):
        return sum(w[s] * x for s, x in terms) / sum(w[s] for s, _ in terms)

    return f


def group_means(lam_r, lam_a):
    def f(terms):
        reason = [x for s, x in terms if s == 0]
        act = [x for s, x in terms if s > 0]
        return lam_r * sum(reason) / len(reason) + lam_a * sum(act) / len(act)

    return f


def test_uniform_equals_models_own_causal_lm_loss(tiny_model, tiny_tokenizer, examples) -> None:
    spec = parse_loss("uniform")
    for group in ([examples[0]], examples):  # one row, and a right-padded batch of two
        b = batch(group, tiny_tokenizer)
        labels = b["input_ids"].masked_fill(b["segments"] < 0, -100)
        with torch.no_grad():
            own = tiny_model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=labels).loss
            assert abs(ours(tiny_model, b, spec).item() - own.item()) < 1e-6


@pytest.mark.parametrize(
    ("loss", "per_token_weight"),
    [
        ("smartad", weighted((1.0, 1.5, 2.0))),
        ("custom:0.5,3,0", weighted((0.5, 3.0, 0.0))),
        ("sad", group_means(0.5, 0.5)),
    ],
)
def test_presets_equal_independent_computation(tiny_model, tiny_tokenizer, examples, loss, per_token_weight) -> None:
    with torch.no_grad():
        got = ours(tiny_model, batch(examples, tiny_tokenizer), parse_loss(loss)).item()
        want = reference(tiny_model, examples, per_token_weight).item()
    assert abs(got - want) < 1e-6


def test_sad_kl_on_common_vocabulary(tiny_model, tiny_tokenizer, examples) -> None:
    # The teacher's head is 8 rows wider, like a 32B teacher's over a 1.5B student's.
    teacher = build_model(len(tiny_tokenizer) + 8, seed=1).eval()
    b = batch(examples, tiny_tokenizer)
    with torch.no_grad():
        got = ours(tiny_model, b, parse_loss("sad_kl:0.3,0.7"), teacher=teacher).item()
        want = reference(tiny_model, examples, group_means(0.3, 0.7), teacher=teacher).item()
        itself = ours(tiny_model, b, parse_loss("sad_kl"), teacher=tiny_model).item()
    assert got > 0.01 and abs(got - want) < 1e-6
    assert abs(itself) < 1e-6


def test_chunked_gradient_and_step_accumulation_match_full_batch(tiny_model_dir, tiny_tokenizer, examples) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype="float32").eval()
    params = [p for p in model.parameters() if p.requires_grad]
    spec = parse_loss("smartad")
    # Full-logit reference gradient over both rows as one step.
    full = torch.autograd.grad(reference(model, examples, weighted((1.0, 1.5, 2.0))), params)
    # The trainer's way: one micro-batch per row, each scaled by the step's coefficients.
    micro = [batch([e], tiny_tokenizer) for e in examples]
    coef = spec.coefficients(sum(segment_counts(b["segments"]) for b in micro))
    grads = [torch.zeros_like(p) for p in params]
    for b in micro:
        part = SegmentObjective(model, chunk=5)(b["input_ids"], b["segments"])
        for g, d in zip(grads, torch.autograd.grad((coef * part).sum(), params)):
            g += d
    assert max((g - f).abs().max().item() for g, f in zip(grads, full)) < 1e-6


def test_loss_spec_errors() -> None:
    with pytest.raises(ValueError, match=r"--loss 'custom:1,2': expected 3 comma-separated"):
        parse_loss("custom:1,2")
    with pytest.raises(ValueError, match=r"unknown --loss 'focal'"):
        parse_loss("focal")
    with pytest.raises(ValueError, match="--loss sad takes no arguments"):
        parse_loss("sad:1,1")
    assert parse_loss("smartad").weights == (1.0, 1.5, 2.0)
    assert parse_loss("sad_kl").weights == (0.5, 0.5, 0.5) and parse_loss("sad_kl").distill
