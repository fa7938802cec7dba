"""Hand-written exported rows and students for the trainer tests."""

from __future__ import annotations

from pathlib import Path

CARD = "---\npolicy: min_nll\nstudent: tiny\nk: 10\n---\n# Exported subset\nProvenance: test rows.\n"


def smolagents_chat(i: int) -> list[dict[str, str]]:
    """A two-step smolagents trajectory whose numbers depend on i."""
    return [
        {"role": "system", "content": "You solve tasks with code."},
        {"role": "user", "content": f"New task:\nWhat is {i} + {i}?"},
        {"role": "assistant", "content": f"Thought: I add {i} and {i}.\nCode:\n```py\nprint({i} + {i})\n```<end_code>"},
        {"role": "user", "content": f"Call id: call_1\nObservation:\n{2 * i}"},
        {
            "role": "assistant",
            "content": f"Thought: It is {2 * i}.\nCode:\n```py\nfinal_answer({2 * i})\n```<end_code>",
        },
    ]


def export_rows(n: int, chat=smolagents_chat) -> list[dict]:
    """Rows with the export's columns."""
    return [
        {
            "messages": chat(i),
            "question_id": f"q{i}",
            "dataset": "test",
            "trajectory_id": f"t{i}",
            "sample_idx": 0,
            "nll": 1.0 + i,
            "n_turns": 2,
            "policy": "min_nll",
            "student": "tiny",
            "k": 10,
        }
        for i in range(n)
    ]


def write_export(folder: Path, rows: list[dict]) -> Path:
    """A save_to_disk export folder with its card."""
    from datasets import Dataset

    Dataset.from_list(rows).save_to_disk(str(folder))
    (folder / "README.md").write_text(CARD)
    return folder


def write_trainable_student(folder: Path) -> Path:
    """A 128-wide tiny Qwen2 whose (tied) embeddings are scaled ×3.

    The stock tiny model's N(0, 0.02) embeddings behind a frozen final norm cap its logits near
    ±1.3, so adapters alone cannot fit anything; scaled, a few dozen LoRA steps can.
    """
    from curate.models.tiny import build_model, build_tokenizer

    tokenizer = build_tokenizer()
    model = build_model(len(tokenizer), seed=0, hidden=128)
    model.get_input_embeddings().weight.data *= 3
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
