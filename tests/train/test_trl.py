"""`curate export --tokenized` and TRL's SFTTrainer: the exported mask is the scored tokens, and TRL's
first step equals `curate train`'s, with its own loss (uniform) and with the SmartAD helper."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factory import add_trajectories

from curate.cli import main
from curate.score import score_store
from curate.store import Store

ROWS = 4  # one optimiser step of curate train (batch 4) holds every row, as TRL's first step does


def chat(i: int) -> list[tuple[str, str]]:
    """Three smolagents steps whose text depends on i (so rows differ in length and content)."""
    return [
        ("system", "You solve tasks with code."),
        ("user", f"New task:\nWhat is {i} times {i + 2}?"),
        ("assistant", f"Thought: multiply.\nCode:\n```py\nx = {i} * {i + 2}\nprint(x)\n```<end_code>"),
        ("tool-call", "Calling tools:\n[{'id': 'call_1'}]"),
        ("tool-response", f"Call id: call_1\nObservation:\n{i * (i + 2)}"),
        (
            "assistant",
            f"Thought: check it once more{' carefully' * i}.\nCode:\n```py\nprint(x == {i * (i + 2)})\n```<end_code>",
        ),
        ("tool-response", "Call id: call_2\nObservation:\nTrue"),
        ("assistant", f"Thought: done.\nCode:\n```py\nfinal_answer({i * (i + 2)})\n```<end_code>"),
    ]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_model_dir):
    """A store of ROWS questions scored by the tiny model, min_nll selected, exported --tokenized."""
    root = tmp_path_factory.mktemp("trl")
    db = root / "store.duckdb"
    with Store(db) as store:
        add_trajectories(store, [{"question_id": f"q{i}", "messages": chat(i)} for i in range(ROWS)])
    run_id = score_store(db, str(tiny_model_dir), progress=False).run_id
    out = root / "export"
    # --student picks the scoring run (its latest) and, with --tokenized, the tokenizer
    assert (
        main(
            [
                "export",
                "--db",
                str(db),
                "--policy",
                "min_nll",
                "--student",
                str(tiny_model_dir),
                "--tokenized",
                "--to",
                str(out),
            ]
        )
        == 0
    )
    return db, run_id, out


def test_completion_mask_is_exactly_the_scored_tokens(exported, tiny_tokenizer):
    from datasets import load_from_disk

    from curate.render import render
    from curate.score import tokenizer_hash

    db, run_id, out = exported
    rows = load_from_disk(str(out))
    with Store(db, read_only=True) as store:
        scored = dict(
            store.sql("SELECT trajectory_id, tokens FROM trajectory_scores WHERE run_id = $r", r=run_id).rows()
        )
    assert rows.num_rows == ROWS
    for row in rows:
        rendering = render(tiny_tokenizer, row["messages"])
        assert row["input_ids"] == rendering.input_ids
        mask = row["completion_mask"]
        assert sum(mask) == scored[row["trajectory_id"]]
        assert mask == [int(t >= 0) for t in rendering.turn]
        assert [int(s > 0) for s in row["segments"]] == mask
        supervised = "".join(rendering.text[a:b] for (a, b), m in zip(rendering.offsets, mask) if m)
        turns = [m["content"] + "<|im_end|>\n" for m in row["messages"] if m["role"] == "assistant"]
        assert supervised == "".join(turns)
        final = "".join(rendering.text[a:b] for (a, b), s in zip(rendering.offsets, row["segments"]) if s == 3)
        assert final.lstrip().startswith("Code:") and "final_answer(" in final
    card = (out / "README.md").read_text()
    assert f"| tokenizer sha256 | {tokenizer_hash(tiny_tokenizer)} |" in card
    assert "| segments | per token: 0 none, 1 reason, 2 action, 3 final" in card


def test_tokenized_export_of_a_stored_selection(exported, tiny_model_dir, tmp_path, capsys):
    from datasets import load_from_disk

    db, run_id, first = exported
    selection = f"min_nll:{run_id}"
    again = tmp_path / "again"
    # the tokenizer defaults to the student of the selection's scoring run
    assert main(["export", "--db", str(db), "--selection", selection, "--tokenized", "--to", str(again)]) == 0
    assert load_from_disk(str(again))["input_ids"] == load_from_disk(str(first))["input_ids"]
    card = (again / "README.md").read_text()
    assert f"| tokenized with | {tiny_model_dir} |" in card
    assert f"--name {selection} --to {again} --tokenized" in card
    capsys.readouterr()
    assert (
        main(
            [
                "export",
                "--db",
                str(db),
                "--selection",
                selection,
                "--student",
                str(tiny_model_dir),
                "--to",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "--student: only with --policy" in capsys.readouterr().err


def curate_first_loss(export: Path, student: Path, out: Path, loss: str) -> float:
    """`curate train`'s first optimiser step loss on the export (micro-batches of 2, step of 4)."""
    assert (
        main(
            [
                "train",
                "--data",
                str(export),
                "--student",
                str(student),
                "--out",
                str(out),
                "--loss",
                loss,
                "--max-steps",
                "2",
                "--batch-size",
                "4",
                "--micro-batch-size",
                "2",
            ]
        )
        == 0
    )
    return json.loads((out / "train_log.jsonl").read_text().splitlines()[0])["loss"]


def trl_first_loss(export: Path, student: Path, out: Path, loss: str | None) -> float:
    """TRL's first-step loss on the export: its own SFTTrainer (loss None) or the segment-weighted one,
    2 steps of 2 rows x 2 accumulated micro-batches (so Σw must span the step's micro-batches)."""
    from datasets import load_from_disk
    from trl import SFTConfig, SFTTrainer

    from curate.train.trl import SegmentWeightedSFTTrainer

    args = SFTConfig(
        output_dir=str(out),
        completion_only_loss=True,
        max_length=None,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        max_steps=2,
        logging_steps=1,
        learning_rate=1e-4,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        disable_tqdm=True,
    )
    rows = load_from_disk(str(export))
    if loss is None:
        trainer = SFTTrainer(model=str(student), train_dataset=rows, args=args)
    else:
        trainer = SegmentWeightedSFTTrainer(model=str(student), train_dataset=rows, args=args, loss=loss)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2
    return losses[0]


def test_trl_first_step_equals_curate_train(exported, tiny_model_dir, tmp_path):
    _db, _run, export = exported
    uniform = curate_first_loss(export, tiny_model_dir, tmp_path / "curate-uniform", "uniform")
    smartad = curate_first_loss(export, tiny_model_dir, tmp_path / "curate-smartad", "smartad")
    assert abs(uniform - smartad) > 1e-4  # the weights change the number, so the comparison below means something
    assert trl_first_loss(export, tiny_model_dir, tmp_path / "trl", None) == pytest.approx(uniform, abs=1e-5)
    assert trl_first_loss(export, tiny_model_dir, tmp_path / "trl-smartad", "smartad") == pytest.approx(
        smartad, abs=1e-5
    )


def test_trl_helper_refuses_what_it_cannot_weight(exported, tiny_model_dir, tmp_path):
    from datasets import load_from_disk
    from trl import SFTConfig

    from curate.train.trl import SegmentWeightedSFTTrainer

    rows = load_from_disk(str(exported[2]))
    cpu = {"output_dir": str(tmp_path), "report_to": [], "use_cpu": True, "bf16": False}
    with pytest.raises(ValueError, match="loss 'sad' averages per segment group, it is not a token weight"):
        SegmentWeightedSFTTrainer(model=str(tiny_model_dir), train_dataset=rows, loss="sad", args=SFTConfig(**cpu))
    with pytest.raises(ValueError, match="needs one row per sequence: set packing=False"):
        SegmentWeightedSFTTrainer(model=str(tiny_model_dir), train_dataset=rows, args=SFTConfig(**cpu, packing=True))
