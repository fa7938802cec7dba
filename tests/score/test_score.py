"""`curate score`: exact per-turn NLLs against an independent per-turn reference, resumability
after SIGKILL, disjoint shards, bounded memory, the render command and the vLLM message."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from factory import add_trajectories, new_store
from reference import reference_turns

from curate.cli import main
from curate.engine import Engine
from curate.render import chat_messages, render
from curate.score import ScoreConfig, nll_extremes, parts_dir, score, shard_of
from curate.score.nll import supervised_nll
from curate.store import Store

WORDS = ["search", "result", "the", "capital", "print", "answer", "café", "naïve", "東京", "🙂", "x = 1", "Ω≈ç"]
# Shared by every run, as an agent's system prompt is: scored against its cached keys and values.
SYSTEM = "You solve tasks with code. Tools: " + ", ".join(f"{w}_{i}" for i, w in enumerate(WORDS * 6))


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def agent_rows(n: int, seed: int = 0, long_every: int = 7) -> list[dict]:
    """Synthetic agent logs: 1 to 5 assistant turns, tool calls, observations, unicode."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        turns = 1 + i % 5
        messages = [("system", SYSTEM), ("user", f"New task:\n{_text(rng, 8)}? <reference>{_text(rng, 3)}</reference>")]
        for m in range(turns):
            messages.append(
                ("assistant", f"Thought: {_text(rng, rng.randint(1, 20))}\nCode:\n```py\nprint({m})\n```<end_code>")
            )
            messages.append(("tool-call", "Calling tools:\n[{'id': 'call_1'}]"))
            observation = _text(rng, 150 if i % long_every == 3 else rng.randint(0, 30))
            messages.append(("tool-response", f"Call id: call_{m}\nObservation:\n{observation}"))
        rows.append({"question_id": f"q{i // 3}", "correct": i % 4 != 0, "messages": messages})
    return rows


def stored_turns(db: Path, run_id: str) -> dict[str, dict[int, tuple[int, float, float]]]:
    with Store(db, read_only=True) as store:
        rows = store.sql("SELECT * FROM turn_scores WHERE run_id = $r", r=run_id)
    out: dict = {}
    for row in rows.iter_rows(named=True):
        out.setdefault(row["trajectory_id"], {})[row["turn"]] = (row["tokens"], row["nll_sum"], row["nll_mean"])
    return out


def make_store(path: Path, rows: list[dict]) -> list[str]:
    store = new_store(path)
    ids = add_trajectories(store, rows)
    store.close()
    return ids


@pytest.fixture(scope="module")
def scored(tmp_path_factory, tiny_model_dir, tiny_tokenizer):
    """A store of 60 agent trajectories (one far longer than the rest) scored through the CLI."""
    rows = agent_rows(59)
    giant = agent_rows(1, seed=1)[0]
    giant["messages"] = [*giant["messages"][:2]] + [
        msg
        for m in range(3)
        for msg in (("assistant", f"Thought: step {m} 🙂"), ("tool-response", "Observation:\n" + "word " * 2500))
    ]
    rows.append({**giant, "question_id": "giant"})
    db = tmp_path_factory.mktemp("scored") / "store.duckdb"
    ids = make_store(db, rows)
    lengths = [len(render(tiny_tokenizer, chat_messages(r["messages"])).input_ids) for r in rows]
    max_length = max(lengths[:-1]) + 10
    assert lengths[-1] > max_length + 1000
    return {"db": db, "ids": ids, "rows": rows, "max_length": max_length, "giant": ids[-1]}


def test_matches_per_turn_reference(scored, tiny_model_dir, tiny_model, tiny_tokenizer, capsys) -> None:
    db, max_length = scored["db"], scored["max_length"]
    assert (
        main(
            [
                "score",
                "--db",
                str(db),
                "--student",
                str(tiny_model_dir),
                "--max-length",
                str(max_length),
                "--batch-tokens",
                "4096",
                "--no-progress",
            ]
        )
        == 0
    )
    run_id = capsys.readouterr().out.strip().splitlines()[-1].removeprefix("run_id=")
    got = stored_turns(db, run_id)
    checked_turns = 0
    for tid, row in zip(scored["ids"], scored["rows"]):
        chat = chat_messages(row["messages"])
        want = reference_turns(tiny_model, tiny_tokenizer, chat, max_length)
        assert sorted(got[tid]) == sorted(want), tid
        for m, (tokens, nll_sum) in want.items():
            assert got[tid][m][0] == tokens
            assert got[tid][m][2] == pytest.approx(nll_sum / tokens, abs=1e-4)
            assert got[tid][m][1] == pytest.approx(nll_sum, abs=1e-4 * tokens)
            checked_turns += 1
    assert checked_turns > 150
    with Store(db, read_only=True) as store:
        runs = store.sql("SELECT * FROM scoring_runs")
        view = store.sql("SELECT trajectory_id, nll, turns, truncated FROM trajectory_nll WHERE run_id = $r", r=run_id)
    assert runs.height == 1 and runs["run_id"][0] == run_id and runs["single_pass"][0]
    assert runs["trajectories"][0] == 60 and runs["finished_at"][0] is not None
    assert runs["max_length"][0] == max_length and runs["dtype"][0] == "float32"
    assert json.loads(runs["config"][0])["batch_tokens"] == 4096
    assert view.filter(view["truncated"])["trajectory_id"].to_list() == [scored["giant"]]
    giant_turns = view.filter(view["trajectory_id"] == scored["giant"])["turns"][0]
    assert 0 < giant_turns < 3  # the last turn lies wholly past the limit: no row
    nll = dict(zip(view["trajectory_id"], view["nll"]))
    assert nll[scored["ids"][4]] == pytest.approx(np.mean([v[2] for v in got[scored["ids"][4]].values()]))
    assert len(got[scored["ids"][0]]) == 1 and len(got[scored["ids"][4]]) == 5

    extremes = nll_extremes(Store(db, read_only=True).con, run_id, n=5)
    ranked = sorted(nll.items(), key=lambda kv: (kv[1], kv[0]))
    assert extremes.filter(extremes["side"] == "lowest")["trajectory_id"].to_list() == [k for k, _ in ranked[:5]]
    assert extremes.filter(extremes["side"] == "highest")["nll"].to_list() == sorted(nll.values())[::-1][:5]


def test_rerun_resumes_same_run(scored, tiny_model_dir) -> None:
    config = ScoreConfig(
        db=str(scored["db"]), student=str(tiny_model_dir), max_length=scored["max_length"], progress=False
    )
    result = score(config)
    run_id = result.run_id
    assert (result.scored, result.tokens, result.prefix_reuse, result.unscored) == (0, 0, "-", 0)
    assert result.lines()[0].startswith("scored 0 trajectories")
    assert stored_turns(scored["db"], run_id).keys() == set(scored["ids"])
    assert not list(parts_dir(scored["db"], run_id).glob("part-*"))


def test_template_that_rewrites_history_falls_back_to_turn_passes(tmp_path, tiny_model_dir, tiny_model) -> None:
    from transformers import AutoTokenizer

    # Like reasoning templates: earlier assistant turns lose their thought when rendered again.
    template = (
        "{% for m in messages %}{% set c = m['content'] %}"
        "{% if m['role'] == 'assistant' and not loop.last %}{% set c = c.split('\\nCode:')[-1] %}{% endif %}"
        "<|im_start|>{{ m['role'] }}\n{{ c }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    student = tmp_path / "student"
    shutil.copytree(tiny_model_dir, student)
    tokenizer = AutoTokenizer.from_pretrained(student)
    tokenizer.chat_template = template
    tokenizer.save_pretrained(student)
    rows = agent_rows(6, seed=3, long_every=100)
    ids = make_store(tmp_path / "s.duckdb", rows)
    run_id = score(ScoreConfig(db=str(tmp_path / "s.duckdb"), student=str(student), progress=False)).run_id
    got = stored_turns(tmp_path / "s.duckdb", run_id)
    for tid, row in zip(ids, rows):
        want = reference_turns(tiny_model, tokenizer, chat_messages(row["messages"]), 10**6)
        assert {m: v[0] for m, v in got[tid].items()} == {m: v[0] for m, v in want.items()}
        assert [got[tid][m][2] for m in want] == pytest.approx([s / n for n, s in want.values()], abs=1e-4)
    with Store(tmp_path / "s.duckdb", read_only=True) as store:
        assert store.sql("SELECT single_pass FROM scoring_runs").item() is False
        fallbacks = store.sql("SELECT DISTINCT fallback FROM trajectory_scores")["fallback"].to_list()
    assert fallbacks == ["template fails the prefix check"]


def test_sigkill_then_rerun_gives_one_row_per_turn_and_same_values(tmp_path, tiny_model_dir) -> None:
    rows = agent_rows(80, seed=5, long_every=1000)
    make_store(tmp_path / "killed.duckdb", rows)
    shutil.copy(tmp_path / "killed.duckdb", tmp_path / "whole.duckdb")
    args = [
        "score",
        "--db",
        str(tmp_path / "killed.duckdb"),
        "--student",
        str(tiny_model_dir),
        "--part-size",
        "4",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    worker = subprocess.Popen(
        [sys.executable, "-c", "from curate.cli import main; raise SystemExit(main())", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    parts = tmp_path / "killed.duckdb.parts"
    deadline = time.monotonic() + 120
    while not list(parts.glob("*/part-*.parquet")) and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert worker.returncode == -signal.SIGKILL, worker.stderr.read().decode()
    written = list(parts.glob("*/part-*.parquet"))
    assert 1 <= len(written) < 80 / 4
    with Store(tmp_path / "killed.duckdb", read_only=True) as store:
        assert store.sql("SELECT count(*) AS n FROM turn_scores").item() == 0  # nothing taken in yet

    config = ScoreConfig(db=str(tmp_path / "killed.duckdb"), student=str(tiny_model_dir), part_size=4, progress=False)
    resumed = score(config)
    whole = score(
        ScoreConfig(db=str(tmp_path / "whole.duckdb"), student=str(tiny_model_dir), part_size=4, progress=False)
    )
    assert resumed.run_id == whole.run_id and resumed.run_trajectories == whole.run_trajectories == 80
    queries = "SELECT trajectory_id, turn, tokens, nll_sum, nll_mean FROM turn_scores ORDER BY trajectory_id, turn"
    with Store(tmp_path / "killed.duckdb", read_only=True) as a, Store(tmp_path / "whole.duckdb", read_only=True) as b:
        got, want = a.sql(queries), b.sql(queries)
        assert got.height == sum(1 + i % 5 for i in range(80))
        assert got.select("trajectory_id", "turn").is_unique().all()
        assert got.equals(want)
        assert a.sql("SELECT trajectories FROM scoring_runs").item() == 80


def test_shards_are_disjoint_and_complete(tmp_path, tiny_model_dir) -> None:
    ids = make_store(tmp_path / "s.duckdb", agent_rows(30, seed=7, long_every=1000))
    seen: list[str] = []
    for index in range(3):
        run_id = score(
            ScoreConfig(db=str(tmp_path / "s.duckdb"), student=str(tiny_model_dir), shard=(index, 3), progress=False)
        ).run_id
        with Store(tmp_path / "s.duckdb", read_only=True) as store:
            now = store.sql("SELECT trajectory_id FROM trajectory_scores")["trajectory_id"].to_list()
            finished = store.sql("SELECT finished_at FROM scoring_runs").item()
            questions = store.sql("SELECT trajectory_id, dataset, question_id FROM trajectories").rows()
        new = sorted(set(now) - set(seen))
        assert new == sorted(t for t, d, q in questions if shard_of(d, q, 3) == index) and new
        assert (finished is not None) == (index == 2)
        seen = now
    assert sorted(seen) == sorted(ids)
    assert stored_turns(tmp_path / "s.duckdb", run_id).keys() == set(ids)


def test_run_without_assistant_turn_is_recorded_with_no_tokens(tmp_path, tiny_model_dir) -> None:
    store = new_store(tmp_path / "s.duckdb")
    task_only, normal = add_trajectories(
        store,
        [
            {"question_id": "q1", "correct": False, "messages": [("system", "Solve."), ("user", "New task:\n2+2?")]},
            {"question_id": "q1"},
        ],
    )
    store.close()
    run_id = score(ScoreConfig(db=str(tmp_path / "s.duckdb"), student=str(tiny_model_dir), progress=False)).run_id
    with Store(tmp_path / "s.duckdb", read_only=True) as store:
        scores = dict(
            store.sql("SELECT trajectory_id, tokens FROM trajectory_scores WHERE run_id = $r", r=run_id).rows()
        )
        nll = store.sql(
            "SELECT trajectory_id, nll, turns, truncated FROM trajectory_nll WHERE run_id = $r ORDER BY turns", r=run_id
        )
        finished = store.sql("SELECT finished_at FROM scoring_runs").item()
    assert scores[task_only] == 0 and scores[normal] > 0
    assert nll.rows()[0] == (task_only, None, 0, False) and nll["trajectory_id"][1] == normal
    assert nll["nll"][1] > 0 and finished is not None


def test_packed_batches_equal_padded_batches(tiny_model) -> None:
    rng = random.Random(0)
    seqs = []
    for n in (5, 40, 17, 64):
        ids = [rng.randrange(tiny_model.config.vocab_size) for _ in range(n)]
        seqs.append((ids, [rng.choice([-1, 0, 1]) for _ in range(n)]))
    stock = Engine(tiny_model)
    padded = supervised_nll(stock, seqs, pack=False)
    packed = supervised_nll(stock, seqs, pack=True)
    alone = [supervised_nll(stock, [s])[0] for s in seqs]
    for a, b, c in zip(padded, packed, alone):
        assert len(a) == len(c) and np.allclose(a, c, atol=1e-5) and np.allclose(b, c, atol=1e-5)


MEMORY_SCRIPT = """
import resource, sys, torch
from curate.engine import Engine
from curate.score.nll import supervised_nll
from curate.models.tiny import build_model
torch.set_num_threads(1)
n, vocab = int(sys.argv[1]), 151936
model = build_model(vocab_size=vocab, hidden=32, layers=1)
ids = torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(0)).tolist()
supervised_nll(Engine(model), [(ids[:64], [0] * 64)])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
(nll,) = supervised_nll(Engine(model), [(ids, [0] * n)])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
with torch.no_grad():
    head = model(torch.tensor([ids[:256]])).logits[0, :-1]
    full = torch.nn.functional.cross_entropy(head, torch.tensor(ids[1:256]), reduction="none")
print(before, after, len(nll), float((full.double() - torch.from_numpy(nll[:255])).abs().max()))
"""


def test_peak_memory_far_below_full_logits() -> None:
    n = 6144
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(n)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=True,
    ).stdout.split()
    before, after, scored, gap = int(out[0]), int(out[1]), int(out[2]), float(out[3])
    full_logits = n * 151936 * 4
    assert scored == n - 1 and gap < 1e-4
    assert after - before < full_logits / 10, (after - before) / 2**20


def test_render_command_prints_the_mapped_chat(scored, capsys) -> None:
    tid = scored["ids"][2]
    assert main(["render", "--db", str(scored["db"]), "--trajectory", tid, "--format", "jsonl"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"trajectory_id": tid, "messages": chat_messages(scored["rows"][2]["messages"])}
    ]
    assert main(["render", "--db", str(scored["db"]), "--trajectory", "nope"]) == 2
    assert capsys.readouterr().err.strip() == f"curate render: error: {scored['db']}: no trajectory 'nope'"


def test_vllm_backend_says_how_to_install(scored, tiny_model_dir, capsys) -> None:
    assert importlib.util.find_spec("vllm") is None  # the message is for installs without the extra
    assert (
        main(
            [
                "score",
                "--db",
                str(scored["db"]),
                "--student",
                str(tiny_model_dir),
                "--backend",
                "vllm",
                "--max-length",
                "100",
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.strip() == (
        "curate score: error: --backend vllm needs vLLM, which is not installed: pip install 'curate[vllm]'"
    )


def _smollm2_with_template(folder: Path, template: str) -> Path:
    """SmolLM2 (its files linked, not copied) under another chat template."""
    from curate.models import resolve_student

    source = resolve_student("smollm2")
    folder.mkdir()
    for file in source.iterdir():
        if file.name != "chat_template.jinja":
            (folder / file.name).symlink_to(file)
    (folder / "chat_template.jinja").write_text(template)
    return folder


# Messages end with a newline and start with one: SmolLM2 merges the two into one token, which
# crosses the end of each assistant turn (the run's probe finds it: every trajectory turn by turn).
NEWLINE_TEMPLATE = (
    "{% for m in messages %}\n{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}\nassistant: {% endif %}"
)


def test_crossing_a_turn_end_and_not_its_start_needs_turn_passes() -> None:
    from curate.render import Rendering
    from curate.score.blocks import _crossed_end

    # text "ab|cd|ef": turns [2, 4) and [4, 6); tokens "ab", "cd", "ef" or "ab", "c", "de", "f"
    def rendering(offsets):
        return Rendering("abcdef", list(range(len(offsets))), offsets, [], [(2, 4), (4, 6)], [(2, 4), (4, 6)])

    assert _crossed_end(rendering([(0, 2), (2, 4), (4, 6)])) is None
    assert _crossed_end(rendering([(0, 3), (3, 4), (4, 6)])) is None  # crosses the start of turn 0 only
    assert _crossed_end(rendering([(0, 2), (2, 3), (3, 5), (5, 6)])) == 0


def test_one_pass_unless_a_token_crosses_a_turn_end(tmp_path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from curate.models import resolve_student

    # An assistant turn that starts with a newline: its first token also takes the newline that
    # ends the generation prompt (a token crossing the turn's start), the same in every pass.
    rows = [
        {
            "question_id": "q",
            "messages": [
                ("user", "2+2?"),
                ("assistant", "\n\nThought: add."),
                ("user", "Observation: 4"),
                ("assistant", "4"),
            ],
        }
    ]
    for name, template, fallback in (
        ("chatml", None, None),
        ("newlines", NEWLINE_TEMPLATE, "template fails the prefix check"),
    ):
        student = resolve_student("smollm2") if template is None else _smollm2_with_template(tmp_path / name, template)
        (tid,) = make_store(tmp_path / f"{name}.duckdb", rows)
        run_id = score(ScoreConfig(db=str(tmp_path / f"{name}.duckdb"), student=str(student), progress=False)).run_id
        with Store(tmp_path / f"{name}.duckdb", read_only=True) as store:
            assert store.sql("SELECT fallback FROM trajectory_scores").item() == fallback
        model = AutoModelForCausalLM.from_pretrained(student).eval()
        tokenizer = AutoTokenizer.from_pretrained(student)
        want = reference_turns(model, tokenizer, chat_messages(rows[0]["messages"]), 10**6)
        got = stored_turns(tmp_path / f"{name}.duckdb", run_id)[tid]
        assert [got[m][0] for m in want] == [n for n, _ in want.values()]
        assert [got[m][2] for m in want] == pytest.approx([s / n for n, s in want.values()], abs=1e-4)


TAKE_IN_SCRIPT = """
import json, sys
from curate.score import ScoreConfig, take_in
config = ScoreConfig(db=sys.argv[1], student=sys.argv[2], progress=False)
print("ready", flush=True)
print(json.dumps(take_in(config, json.loads(sys.argv[3])), default=str))
"""


def test_take_in_lists_parts_only_under_the_write_lock(tmp_path, tiny_model_dir, monkeypatch) -> None:
    import curate.score.job

    db = tmp_path / "s.duckdb"
    make_store(db, agent_rows(6, seed=2, long_every=1000))
    monkeypatch.setattr(
        curate.score.job,
        "take_in",
        lambda config, manifest: {"unscored": 6, "trajectories": 0, "tokens": 0, "alone_left": 0},
    )
    run_id = score(ScoreConfig(db=str(db), student=str(tiny_model_dir), part_size=2, progress=False)).run_id
    monkeypatch.undo()
    manifest = json.loads((parts_dir(db, run_id) / "run.json").read_text())
    assert len(list(parts_dir(db, run_id).glob("part-*"))) == 3
    holder = Store(db)  # another worker holding the write lock
    worker = subprocess.Popen(
        [sys.executable, "-c", TAKE_IN_SCRIPT, str(db), str(tiny_model_dir), json.dumps(manifest)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout.readline() == "ready\n"
    time.sleep(1.0)  # the worker is now waiting for the lock
    curate.score.take_in(ScoreConfig(db=str(db), student=str(tiny_model_dir), progress=False), manifest)
    assert not list(parts_dir(db, run_id).glob("part-*"))  # taken in and removed by the lock holder
    holder.close()
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    assert json.loads(out)["trajectories"] == 6 and json.loads(out)["unscored"] == 0


def test_run_id_follows_the_code_version(tiny_model_dir, tiny_tokenizer, monkeypatch) -> None:
    import curate.score.job
    from curate.score import identify

    config = ScoreConfig(db="unused", student=str(tiny_model_dir), max_length=64)
    before = identify(config, tiny_model_dir, tiny_tokenizer)
    monkeypatch.setattr(curate.score.job, "code_version", lambda *folders: "0.1.0+changed")
    after = identify(config, tiny_model_dir, tiny_tokenizer)
    assert before.run_id != after.run_id and after.code_version == "0.1.0+changed"


def test_weights_hash_is_the_files_sha256_remembered_until_a_file_changes(tmp_path, monkeypatch) -> None:
    import hashlib

    from curate.score import weights_hash

    monkeypatch.setenv("CURATE_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "b.safetensors").write_bytes(b"second" * 1000)
    (model / "a.bin").write_bytes(b"first")
    (model / "config.json").write_text("{}")  # not a weight file
    want = hashlib.sha256(b"a.bin\0first" + b"b.safetensors\0" + b"second" * 1000).hexdigest()
    assert weights_hash(model) == want
    (memo,) = (tmp_path / "cache" / "weights-sha256").iterdir()
    assert memo.read_text() == want
    memo.write_text("0" * 64)  # what is remembered is what a run gets: nothing is read again
    assert weights_hash(model) == "0" * 64
    (model / "a.bin").write_bytes(b"FIRST")  # a file rewritten: hashed anew
    changed = hashlib.sha256(b"a.bin\0FIRST" + b"b.safetensors\0" + b"second" * 1000).hexdigest()
    assert weights_hash(model) == changed
    (now,) = set(memo.parent.iterdir()) - {memo}
    now.write_text("not a digest")  # a damaged memo is not trusted
    assert weights_hash(model) == changed and now.read_text() == changed


def test_tiny_max_length_scores_every_trajectory_as_truncated(scored, tiny_model_dir, tmp_path, capsys) -> None:
    db = tmp_path / "s.duckdb"
    shutil.copy(scored["db"], db)
    assert (
        main(["score", "--db", str(db), "--student", str(tiny_model_dir), "--max-length", "12", "--no-progress"]) == 0
    )
    out = capsys.readouterr().out
    assert "truncated at 12 tokens: 60 (60 with no turn left)" in out
    run_id = out.strip().splitlines()[-1].removeprefix("run_id=")
    with Store(db, read_only=True) as store:
        view = store.sql(
            "SELECT count(*) AS n, count(nll) AS nlls, sum(turns) AS turns, bool_and(truncated) AS cut "
            "FROM trajectory_nll WHERE run_id = $r",
            r=run_id,
        )
    assert view.row(0) == (60, 0, 0, True)


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--part-size", "0", "--part-size 0: need a whole number of at least 1"),
        ("--batch-tokens", "-5", "--batch-tokens -5: need a whole number of at least 1"),
        ("--max-length", "1", "--max-length 1: need a whole number of at least 2"),
        ("--shard", "3/3", "--shard '3/3': need 0 <= I < N"),
    ],
)
def test_numeric_options_are_checked(scored, tiny_model_dir, option, value, message, capsys) -> None:
    assert main(["score", "--db", str(scored["db"]), "--student", str(tiny_model_dir), option, value]) == 2
    assert capsys.readouterr().err.strip() == f"curate score: error: {message}"
