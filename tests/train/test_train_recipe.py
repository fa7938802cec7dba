"""The training recipe end to end on a tiny student: learning, outputs, reload, merge, resume, DDP."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from factory import add_scores
from train_rows import export_rows, smolagents_chat, write_export, write_trainable_student

from curate.cli import main
from curate.export import ExportConfig
from curate.export import export as export_selection
from curate.ingest import IngestOptions, ingest
from curate.render.segments import FINAL
from curate.select import SelectConfig
from curate.store import Store
from curate.train.config import TrainConfig
from curate.train.data import encode, load_export
from curate.train.recipe import no_decision_warning, read_log, train


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> Path:
    return write_trainable_student(tmp_path_factory.mktemp("student") / "model")


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    return write_export(tmp_path_factory.mktemp("export") / "data", export_rows(4))


def config(export: Path, student: Path, out: Path, **overrides) -> TrainConfig:
    base = dict(data=str(export), student=str(student), out=str(out), lr=1e-2, lora_r=16, lora_alpha=32, max_steps=30)
    return TrainConfig(**{**base, **overrides})


def log_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_training_halves_loss_writes_outputs_reloads_and_merges(export, student, tmp_path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    trained = train(config(export, student, out))
    log = log_of(out)
    # 4 rows, effective batch 4: every step sees all the data, so first and last compare like for like.
    assert [r["step"] for r in log] == list(range(1, 31))
    assert {"step", "loss", "loss_reason", "loss_action", "loss_final", "tokens", "lr", "tokens_per_s"} <= log[0].keys()
    assert log[-1]["loss"] < log[0]["loss"] / 2 and log[-1]["loss"] < math.log(1024) / 2
    assert log[0]["n_final"] > 0 and log[0]["tokens"] == sum(len(r) for r in _encoded(export, student))

    record = json.loads((out / "train_config.json").read_text())
    assert record["config"]["loss"] == "smartad" and record["resolved"]["grad_accum"] == 4
    assert record["resolved"]["loss"]["weights"] == [1.0, 1.5, 2.0]
    assert record["data"]["card_header"] == {"policy": "min_nll", "student": "tiny", "k": 10}
    # The prompt the rows open with (curate eval shows it to the student).
    assert (
        record["data"]["system_prompt"],
        record["data"]["system_prompt_rows"],
        record["data"]["system_prompts"],
    ) == ("You solve tasks with code.", 4, 1)
    assert (out / "data_card.md").read_text().startswith("---\npolicy: min_nll")
    assert (out / "loss_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 16

    ids = torch.tensor(_encoded(export, student)[:1])
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(student, dtype="float32"), out).eval()
    assert torch.equal(logits(trained.model, ids), logits(reloaded, ids))

    assert main(["merge", "--adapter", str(out), "--out", str(tmp_path / "merged")]) == 0
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    assert json.loads((tmp_path / "merged" / "train_config.json").read_text()) == record
    assert torch.allclose(logits(merged, ids), logits(reloaded, ids), atol=1e-5)


def _encoded(export: Path, student: Path) -> list[list[int]]:
    from transformers import AutoTokenizer

    rows, _ = load_export(str(export))
    return [
        e.input_ids
        for e in encode(rows, AutoTokenizer.from_pretrained(student), "smolagents", 10240, "end", "x").examples
    ]


def test_killed_run_resumes_to_the_same_adapter(export, student, tmp_path) -> None:
    from safetensors.torch import load_file

    # Batch 2 over 4 rows: two steps an epoch, so the run crosses epochs; LoRA dropout is on.
    cfg = dict(max_steps=6, batch_size=2, save_every=2)
    whole = tmp_path / "whole"
    train(config(export, student, whole, **cfg))
    broken = tmp_path / "broken"
    # Killed after step 3: only the step-2 checkpoint survives; step 3 is replayed.
    assert train(config(export, student, broken, **cfg), stop_after=3).steps == 3
    assert (broken / "checkpoints" / "latest").read_text() == "step-2"
    assert not (broken / "adapter_model.safetensors").exists()
    with (broken / "train_log.jsonl").open("a") as log:
        log.write('{"step": 4, "epoch": 1, "lo')  # killed while writing step 4's line
    assert train(config(export, student, broken, **cfg)).steps == 6
    assert [r["loss"] for r in log_of(broken)] == [r["loss"] for r in log_of(whole)]
    a, b = load_file(whole / "adapter_model.safetensors"), load_file(broken / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    bad = tmp_path / "bad_log.jsonl"
    bad.write_text('{"step": 1}\n{"step": 2, "lo\n{"step": 3}\n')
    with pytest.raises(ValueError, match=rf"^{bad}: line 2: not a JSON log entry \(Unterminated string"):
        read_log(bad)
    with pytest.raises(ValueError, match=r"holds a run with a different config \(lr\)"):
        train(config(export, student, broken, lr=1e-3, **cfg))
    changed = write_export(tmp_path / "changed", export_rows(4))
    train(config(changed, student, tmp_path / "other", max_steps=1))
    shutil.rmtree(changed)
    write_export(changed, export_rows(3))
    with pytest.raises(ValueError, match=r"holds a run with a different config \(data\)"):
        train(config(changed, student, tmp_path / "other", max_steps=1))


def test_cli_trains_from_parquet_with_per_row_profile(student, tmp_path, capsys) -> None:
    from datasets import Dataset

    def mint_chat(i: int) -> list[dict[str, str]]:
        return [
            {"role": "user", "content": f"Task:\nWhat is {i} * 3?"},
            {"role": "assistant", "content": f"<thought> multiply </thought> <execute>print({i} * 3)</execute>"},
            {"role": "user", "content": f"Observation:\n{3 * i}"},
            {"role": "assistant", "content": f"The answer is <solution> {3 * i} </solution>"},
        ]

    rows = [{**r, "profile": "mint"} for r in export_rows(2, mint_chat)] + export_rows(2)
    parquet = tmp_path / "sel.parquet"
    Dataset.from_list(rows).to_parquet(str(parquet))
    out = tmp_path / "cli"
    argv = [
        "train",
        "--data",
        str(parquet),
        "--student",
        str(student),
        "--out",
        str(out),
        "--max-steps",
        "2",
        "--lora-r",
        "4",
        "--lora-alpha",
        "8",
        "--loss",
        "custom:1,2,3",
        "--no-gradient-checkpointing",
        "--micro-batch-size",
        "2",
    ]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip().endswith(str(out))
    record = json.loads((out / "train_config.json").read_text())
    assert record["config"]["gradient_checkpointing"] is False and record["data"]["card"] is None
    assert record["resolved"]["grad_accum"] == 2  # two padded micro-batches of two rows
    # Every row has a final span under its own profile (mint rows would have none as smolagents).
    assert record["data"]["encode"]["tokens_final"] > 0 and len(log_of(out)) == 2


def test_real_mint_export_trains_with_its_own_profile(shared_data, student, tmp_path, capsys) -> None:
    """Real MINT GSM8K runs, ingested, scored, selected and exported: the trainer finds their
    <execute>/<solution> spans from the export's `profile` column, and warns when a step has none."""
    from transformers import AutoTokenizer

    store = Store(":memory:")
    ingest(
        store,
        [shared_data / "trajectories" / "mint" / "mint_gsm8k.jsonl.gz"],
        "gsm8k",
        options=IngestOptions(progress=False),
    )
    turns = store.sql("SELECT trajectory_id, assistant_turns FROM trajectories WHERE clean").rows()
    add_scores(store, "mint", {t: [float(n)] * n for t, n in turns})  # shortest runs win min_nll
    parquet = tmp_path / "mint.parquet"
    done = export_selection(store, ExportConfig(to=str(parquet), select=SelectConfig(run="mint", k=10)))
    store.close()
    rows, _ = load_export(str(parquet))
    assert rows.num_rows == done.rows > 0 and set(rows["profile"]) == {"mint"}

    tokenizer = AutoTokenizer.from_pretrained(student)
    own = encode(rows, tokenizer, None, 10240, "end", "mint")
    assert own.stats == encode(rows, tokenizer, "mint", 10240, "end", "mint").stats
    assert own.stats["profiles"] == {"mint": rows.num_rows}
    # Every exported run is correct, so it ends with a <solution> span: its final tokens.
    finals = [e.segments.count(FINAL) for e in own.examples]
    assert len(finals) == rows.num_rows and min(finals) > 0 and own.stats["tokens_action"] > 0
    wrong = encode(rows, tokenizer, "smolagents", 10240, "end", "mint").stats
    assert wrong["tokens_action"] == wrong["tokens_final"] == 0

    argv = [
        "train",
        "--data",
        str(parquet),
        "--student",
        str(student),
        "--max-steps",
        "1",
        "--batch-size",
        "1",
        "--lora-r",
        "4",
        "--lora-alpha",
        "8",
        "--no-gradient-checkpointing",
    ]
    assert main([*argv, "--out", str(tmp_path / "own")]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "forced"), "--profile", "smolagents"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert warned == [no_decision_warning(1, ["smolagents"], "smartad")]
    assert "step 1: no action or final token under marker profile smolagents" in warned[0]


def test_bad_rows_and_options_are_named(student, tmp_path, capsys) -> None:
    rows = export_rows(2)
    rows[1]["messages"][3]["role"] = "tool"
    data = write_export(tmp_path / "bad", rows)
    base = ["train", "--data", str(data), "--student", str(student), "--out", str(tmp_path / "o")]
    assert main(base) == 2
    assert f"{data}: row 1 (trajectory_id t1): field `messages[3].role` is 'tool'" in capsys.readouterr().err
    assert main([*base, "--truncation", "tail"]) == 2
    assert "--truncation 'tail': expected end or drop" in capsys.readouterr().err
    assert main([*base, "--loss", "sad_kl"]) == 2
    assert "--teacher is required by --loss sad_kl" in capsys.readouterr().err


def test_truncation_policies_count_lost_final_spans(tiny_tokenizer, tmp_path) -> None:
    distinct = [dict(r, messages=smolagents_chat(7 * 10**k)) for k, r in enumerate(export_rows(3))]
    rows, _ = load_export(str(write_export(tmp_path / "d", distinct)))
    lengths = [len(e.input_ids) for e in encode(rows, tiny_tokenizer, "smolagents", 10240, "end", "d").examples]
    cut = sorted(lengths)[1]  # the longest two rows are too long, and lose their final tail
    kept = encode(rows, tiny_tokenizer, "smolagents", cut - 1, "end", "d")
    assert [len(e.input_ids) for e in kept.examples] == [min(n, cut - 1) for n in lengths]
    assert kept.stats["truncated"] == 2 and kept.stats["final_cut"] == 2
    dropped = encode(rows, tiny_tokenizer, "smolagents", cut - 1, "drop", "d")
    assert len(dropped.examples) == 1 and dropped.stats["dropped_too_long"] == 2
    with pytest.raises(ValueError, match="no trainable rows"):  # only the system prompt fits
        encode(rows, tiny_tokenizer, "smolagents", 5, "end", "d")


def test_torchrun_two_ranks_match_one_process(export, student, tmp_path) -> None:
    # Without dropout, 2 ranks × 2 micro-batches and 1 rank × 4 see the same rows per step.
    args = [
        "train",
        "--data",
        str(export),
        "--student",
        str(student),
        "--max-steps",
        "2",
        "--lora-r",
        "4",
        "--lora-alpha",
        "8",
        "--lora-dropout",
        "0",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).with_name("torchrun")
    curate = Path(sys.executable).with_name("curate")
    done = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node",
            "2",
            "--no-python",
            str(curate),
            *args,
            "--out",
            str(tmp_path / "ddp"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    ddp, one = log_of(tmp_path / "ddp"), log_of(tmp_path / "one")
    assert json.loads((tmp_path / "ddp" / "train_config.json").read_text())["resolved"]["world_size"] == 2
    assert [r["tokens"] for r in ddp] == [r["tokens"] for r in one]
    assert all(abs(a["loss"] - b["loss"]) < 1e-5 for a, b in zip(ddp, one))


def test_demo_hook_returns_first_and_last_segment_losses(export, tiny_model_dir, tmp_path) -> None:
    from curate.train.recipe import demo

    result = demo(str(export), str(tmp_path / "demo"), steps=3, student=str(tiny_model_dir))
    assert [result.first, result.last] == [log_of(tmp_path / "demo")[i] for i in (0, -1)]
    assert [result.first["step"], result.last["step"]] == [1, 3]
    lines = result.lines()
    first = result.first
    assert lines[0] == (
        f"train step   1: loss {first['loss']:.3f} (reason {first['loss_reason']:.3f}, action "
        f"{first['loss_action']:.3f}, final {first['loss_final']:.3f}), {first['tokens_per_s']:.0f} tokens/s"
    )
    assert lines[1].startswith("train step   3: loss ")
