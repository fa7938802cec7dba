"""`curate export`: folder and parquet round trips, the dataset card, and the Hub path up to the
huggingface_hub call (recorded, since no hub is reachable) and through a real failed connection."""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path

import datasets
import huggingface_hub
import pyarrow.parquet as pq
import pytest
from factory import add_scores, add_trajectories
from test_select import POLICIES, Sample, reference

from curate.cli import main
from curate.export import HUB_FILES, HUB_PARQUET, ExportConfig, demo, export
from curate.ingest import IngestOptions, ingest
from curate.render import stored_chats
from curate.select import COLUMNS as SELECTION_COLUMNS
from curate.select import SelectConfig, run_policy
from curate.store import Store

COLUMNS = [
    "messages",
    "question_id",
    "dataset",
    "trajectory_id",
    "sample_idx",
    "nll",
    "n_turns",
    "policy",
    "student",
    "k",
    "profile",
]
SECRET = "hf_test_token_never_printed"
AGENT_RUN = [
    ("system", "You are an agent."),
    ("user", "New task:\nWhat is 6*7? <reference>42</reference>"),
    ("assistant", "Thought: multiply.\nCode:\n```py\nprint(6*7)\n```<end_code>"),
    ("tool-call", "Calling tools:\n[{'id': 'call_1', 'name': 'python_interpreter'}]"),
    ("tool-response", "Call id: call_1\nObservation:\n42"),
    ("assistant", "Thought: done.\nCode:\n```py\nfinal_answer(42)\n```<end_code>"),
    ("tool-response", "Call id: call_2\nObservation:\n42"),
]
AGENT_CHAT = [  # the role mapping of DESIGN.md, written out by hand
    {"role": "system", "content": "You are an agent."},
    {"role": "user", "content": "New task:\nWhat is 6*7?"},
    {"role": "assistant", "content": "Thought: multiply.\nCode:\n```py\nprint(6*7)\n```<end_code>"},
    {"role": "user", "content": "Call id: call_1\nObservation:\n42"},
    {"role": "assistant", "content": "Thought: done.\nCode:\n```py\nfinal_answer(42)\n```<end_code>"},
]


def short_run(answer: str) -> list[tuple[str, str]]:
    return [
        ("system", "You are an agent."),
        ("user", f"New task:\nSay {answer}."),
        ("assistant", f"Thought: easy.\nCode:\n```py\nfinal_answer('{answer}')\n```<end_code>"),
    ]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A store of 4 questions: the agent run wins q1, q2 has one candidate, q3 none, q4 none scored."""
    path = tmp_path / "store.duckdb"
    with Store(path) as store:
        ids = add_trajectories(
            store,
            [
                {"question_id": "q1", "messages": short_run("a"), "teacher_model": "big-teacher"},
                {"question_id": "q1", "messages": AGENT_RUN, "teacher_model": "big-teacher"},
                {"question_id": "q1", "messages": AGENT_RUN, "teacher_model": "other-teacher", "correct": False},
                {"question_id": "q2", "messages": short_run("b"), "teacher_model": "other-teacher"},
                {"question_id": "q3", "messages": short_run("c"), "max_steps": True},
                {"question_id": "q4", "messages": short_run("d")},
            ],
        )
        add_scores(store, "run1", {ids[0]: [2.0], ids[1]: [0.5, 1.0], ids[2]: [0.1], ids[3]: [3.0], ids[4]: [0.2]})
    return path


def chosen(db: Path, selection_id: str) -> dict[str, dict]:
    with Store(db, read_only=True) as store:
        rows = store.sql(
            "SELECT r.*, t.sample_idx, t.assistant_turns FROM selection_rows r JOIN trajectories t"
            " USING (trajectory_id) WHERE selection_id = $s",
            s=selection_id,
        )
        chats = stored_chats(store.con, rows["trajectory_id"].to_list())
    return {r["trajectory_id"]: {**r, "messages": chats[r["trajectory_id"]]} for r in rows.iter_rows(named=True)}


def assert_holds_selection(data: datasets.Dataset, db: Path, selection_id: str, tokenizer) -> None:
    """Exactly the selected trajectories, rendered, with their provenance; every row templates."""
    want = chosen(db, selection_id)
    assert data.column_names == COLUMNS
    assert sorted(data["trajectory_id"]) == sorted(want)
    for row in data:
        ref = want[row["trajectory_id"]]
        assert row["messages"] == ref["messages"]
        assert (row["question_id"], row["dataset"], row["sample_idx"], row["n_turns"]) == (
            ref["question_id"],
            ref["dataset"],
            ref["sample_idx"],
            ref["assistant_turns"],
        )
        assert row["n_turns"] == sum(m["role"] == "assistant" for m in row["messages"])
        assert row["nll"] == pytest.approx(ref["nll"])
        assert (row["policy"], row["student"], row["profile"]) == ("min_nll", "tiny", "smolagents")
        text = tokenizer.apply_chat_template(row["messages"], tokenize=False)
        assert all(m["content"] in text for m in row["messages"])


def test_folder_round_trip_and_card(db, tmp_path, tiny_tokenizer, capsys) -> None:
    out = tmp_path / "out"
    assert main(["export", "--db", str(db), "--policy", "min_nll", "--run", "run1", "--to", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(
        "selection min_nll:run1: exported 2 trajectories (2 questions with no clean candidate left out)\n"
    )
    data = datasets.load_from_disk(str(out))
    assert data.num_rows == 2
    assert_holds_selection(data, db, "min_nll:run1", tiny_tokenizer)
    agent = next(r for r in data if r["question_id"] == "q1")
    assert (agent["trajectory_id"], agent["messages"], agent["k"]) == ("ds:q1:1", AGENT_CHAT, None)
    assert agent["nll"] == pytest.approx(0.75)

    card = huggingface_hub.DatasetCard.load(out / "README.md")
    assert card.data.license == "other"
    assert card.data.task_categories == ["text-generation"]
    assert "policy-min_nll" in card.data.tags and card.data.size_categories == ["n<1K"]
    assert "configs" not in card.data.to_dict()  # no data/ parquet in a folder export
    for fact in (
        "| scoring run | run1 |",
        "| student | tiny |",
        "| teacher model(s) | big-teacher, other-teacher |",
        "4 questions; 2 exported",
        "| no clean trajectory | False | 1 |",
        "| clean trajectories not scored in this run | False | 1 |",
        "| factory |  |  | big-teacher | 1 |",
        "| policy | min_nll (sql/policies/min_nll.sql, sha256 ",
    ):
        assert fact in card.text
    config = json.loads((out / "export_config.json").read_text())
    assert config["counts"]["selected"] == 2 and config["selection"]["run_id"] == "run1"
    assert config["command"] in card.text
    assert config["command"] == shlex.join(
        [
            "curate",
            "export",
            "--db",
            str(db),
            "--policy",
            "min_nll",
            "--run",
            "run1",
            "--name",
            "min_nll:run1",
            "--to",
            str(out),
        ]
    )

    again = tmp_path / "again"
    argv = shlex.split(config["command"])[1:]
    argv[argv.index("--to") + 1] = str(again)
    assert main(argv) == 0
    assert datasets.load_from_disk(str(again)).to_list() == data.to_list()


def test_parquet_round_trip_with_k(db, tmp_path, tiny_tokenizer) -> None:
    target = tmp_path / "sub" / "sel.parquet"
    with Store(db) as store:
        done = export(store, ExportConfig(to=str(target), select=SelectConfig(run="run1", k=1)))
    assert (done.selection_id, done.rows, done.no_candidate, done.path) == ("min_nll:run1:k1", 2, 2, target)
    data = datasets.Dataset.from_parquet(str(target))
    assert_holds_selection(data, db, "min_nll:run1:k1", tiny_tokenizer)
    assert sorted(data["trajectory_id"]) == ["ds:q1:0", "ds:q2:0"]
    assert set(data["k"]) == {1}
    assert done.card == tmp_path / "sub" / "sel.README.md"
    assert "| K | 1 |" in done.card.read_text()
    assert json.loads((tmp_path / "sub" / "sel.export_config.json").read_text())["export"]["select"]["k"] == 1


def test_export_a_stored_selection_read_only(db, tmp_path, capsys) -> None:
    with Store(db) as store:
        export(
            store,
            ExportConfig(to=str(tmp_path / "first"), select=SelectConfig(policy="max_nll", run="run1", name="hard")),
        )
    assert main(["export", "--db", str(db), "--selection", "hard", "--to", str(tmp_path / "second")]) == 0
    second = datasets.load_from_disk(str(tmp_path / "second"))
    assert second.to_list() == datasets.load_from_disk(str(tmp_path / "first")).to_list()
    assert sorted(second["trajectory_id"]) == ["ds:q1:0", "ds:q2:0"]
    assert main(["export", "--db", str(db), "--selection", "nope", "--to", str(tmp_path / "x")]) == 2
    assert "no selection 'nope' in this store" in capsys.readouterr().err
    assert main(["export", "--db", str(db), "--selection", "hard", "--k", "3", "--to", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err == (
        "curate export: error: --selection exports a stored selection as it was made; --k: only with --policy\n"
    )


def test_export_refuses_to_overwrite_other_folders(db, tmp_path, capsys) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert main(["export", "--db", str(db), "--policy", "min_nll", "--to", str(tmp_path / "mine")]) == 2
    assert "is not a curate export folder" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert main(["export", "--db", str(db), "--to", str(tmp_path / "x")]) == 2
    assert "give --policy NAME (select now) or --selection NAME" in capsys.readouterr().err


def test_parquet_export_replaces_only_an_earlier_export(db, tmp_path, capsys, monkeypatch) -> None:
    def selections() -> list[str]:
        with Store(db, read_only=True) as store:
            return store.sql("SELECT selection_id FROM selections ORDER BY ALL")["selection_id"].to_list()

    def export_to(to: str, *more: str) -> int:
        return main(["export", "--db", str(db), "--policy", "min_nll", "--run", "run1", "--to", to, *more])

    mine, card = tmp_path / "mine.parquet", tmp_path / "mine.README.md"
    mine.write_bytes(b"someone's data")
    assert export_to(str(mine)) == 2
    assert capsys.readouterr().err == (
        f"curate export: error: {mine} exists and is not part of a curate export (no "
        "mine.export_config.json beside it); choose another --to or remove it\n"
    )
    assert mine.read_bytes() == b"someone's data" and not card.exists()
    assert selections() == []  # refused before anything was selected
    mine.unlink()
    card.write_text("my notes")
    assert export_to(str(mine), "--k", "1") == 2
    assert f"{card} exists and is not part of a curate export" in capsys.readouterr().err
    assert card.read_text() == "my notes" and not mine.exists()
    card.unlink()
    # An earlier export is replaced whole: data, card and config.
    assert export_to(str(mine), "--k", "1") == 0 and export_to(str(mine)) == 0
    assert "| K | all |" in card.read_text() and set(datasets.Dataset.from_parquet(str(mine))["k"]) == {None}
    assert sorted(p.name for p in tmp_path.glob("mine*")) == [
        "mine.README.md",
        "mine.export_config.json",
        "mine.parquet",
    ]

    capsys.readouterr()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for to in ("hub:../escaped", "hub:org/..", "hub:-org/name", "hub:org--x/name"):
        assert export_to(to) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"curate export: error: --to {to}: not a Hub repo id (") and err.count("\n") == 1
    assert not (tmp_path / "escaped").exists() and list(work.iterdir()) == []


def test_hub_push_reaches_huggingface_hub(db, tmp_path, monkeypatch, capsys) -> None:
    calls: list[tuple] = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        uploaded = sorted(
            str(p.relative_to(folder))
            for p in folder.rglob("*")
            if p.is_file() and any(p.relative_to(folder).match(g) for g in kwargs["allow_patterns"])
        )
        calls.append(
            (
                "upload_folder",
                kwargs,
                uploaded,
                (folder / "README.md").read_text(),
                pq.read_table(folder / HUB_PARQUET).to_pylist(),
            )
        )

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--db", str(db), "--policy", "min_nll", "--to", "hub:my-org/smartad", "--private"]) == 0
    printed = capsys.readouterr()
    assert SECRET not in printed.out + printed.err
    assert "pushed to https://huggingface.co/datasets/my-org/smartad" in printed.out

    (_, repo_id, create_kwargs), (_, upload_kwargs, uploaded, card, rows) = calls
    assert repo_id == "my-org/smartad"
    assert create_kwargs == {"private": True, "repo_type": "dataset", "exist_ok": True}
    assert (upload_kwargs["repo_id"], upload_kwargs["repo_type"], upload_kwargs["allow_patterns"]) == (
        "my-org/smartad",
        "dataset",
        HUB_FILES,
    )
    assert uploaded == ["README.md", HUB_PARQUET, "export_config.json"]
    assert "configs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*.parquet" in card
    assert "--to hub:my-org/smartad --private" in card
    assert sorted(r["trajectory_id"] for r in rows) == ["ds:q1:1", "ds:q2:0"]
    assert next(r for r in rows if r["question_id"] == "q1")["messages"] == AGENT_CHAT
    local = tmp_path / "exports" / "my-org" / "smartad"
    assert datasets.load_from_disk(str(local)).num_rows == 2


def test_hub_failure_keeps_the_local_copy(db, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("HF_TOKEN", SECRET)
    local = tmp_path / "kept"
    assert main(["export", "--db", str(db), "--policy", "min_nll", "--to", "hub:org/name", "--local", str(local)]) == 2
    printed = capsys.readouterr()
    assert printed.err.splitlines()[-1] == (  # after the datasets progress bars
        f"curate export: error: could not push to hub:org/name ([Errno 111] Connection refused); the export is kept "
        f"in {local}"
    )
    assert SECRET not in printed.out + printed.err
    assert datasets.load_from_disk(str(local)).num_rows == 2
    assert (local / HUB_PARQUET).is_file() and (local / "README.md").is_file()
    assert main(["export", "--db", str(db), "--policy", "min_nll", "--to", "hub:just-a-name"]) == 2
    assert "a Hub target is hub:ORG/NAME" in capsys.readouterr().err


def test_demo_lines(db, tmp_path) -> None:
    with Store(db) as store:
        lines = demo(store, tmp_path / "demo")
    assert lines[0] == "selection min_nll:run1: policy min_nll, run run1 (student tiny), data set all, K all"
    assert lines[1] == "  questions 4, selected 2, no clean candidate 2"
    assert f"exported 2 trajectories to {tmp_path / 'demo'} (datasets.load_from_disk)" in "\n".join(lines)
    assert lines[-4:] == [
        "  ds/q1: chosen 0.750 (rank 1 of 2); others: 2.000",
        "  ds/q2: chosen 3.000 (rank 1 of 1); others: no other candidate",
        "  ds/q3: none (no clean trajectory)",
        "  ds/q4: none (clean trajectories not scored in this run)",
    ]


def test_real_mint_runs(shared_data, tmp_path, tiny_tokenizer) -> None:
    """48 real GSM8K questions x 55 agent runs: every policy against the reference, then an export."""
    store = Store(":memory:")  # the factory's row-by-row score inserts are 10x slower on a file
    ingest(
        store,
        [shared_data / "trajectories" / "mint" / "mint_gsm8k.jsonl.gz"],
        "gsm8k",
        options=IngestOptions(progress=False),
    )
    stored = store.sql(
        "SELECT trajectory_id, dataset, question_id, sample_idx, correct, parse_error, max_steps,"
        " clean, assistant_turns FROM trajectories"
    )
    # a stand-in student: turn means in quarter steps from a hash of the id, so ties are common
    means = {
        t: [int(hashlib.md5(f"{t}:{m}".encode()).hexdigest(), 16) % 8 / 4 for m in range(turns)]
        for t, turns in stored.select("trajectory_id", "assistant_turns").iter_rows()
    }
    add_scores(store, "mint", means)
    samples = [
        Sample(d, q, i, ok, pe, ms, {"mint": means[t]}, trajectory_id=t)
        for t, d, q, i, ok, pe, ms, _clean, _turns in stored.iter_rows()
    ]
    assert [x.clean for x in samples] == stored["clean"].to_list()
    asked = sorted(store.sql("SELECT dataset, question_id FROM questions").rows())
    assert len(asked) == 48
    for policy in POLICIES:
        for k in (None, 10, 1):
            got = [tuple(r) for r in run_policy(store.con, policy, "mint", k=k).select(SELECTION_COLUMNS).iter_rows()]
            want = reference(samples, asked, policy, "mint", k=k)
            assert [r[:3] + r[4:] for r in got] == [r[:3] + r[4:] for r in want], (policy, k)
    done = export(store, ExportConfig(to=str(tmp_path / "out"), select=SelectConfig(run="mint", k=10)))
    data = datasets.load_from_disk(str(tmp_path / "out"))
    chosen = [r for r in reference(samples, asked, "min_nll", "mint", k=10) if r[2]]
    assert done.rows == data.num_rows == len(chosen) and done.no_candidate == 48 - len(chosen)
    assert sorted(data["trajectory_id"]) == sorted(r[2] for r in chosen)
    assert set(data["profile"]) == {"mint"}
    for row in data:
        assert row["messages"][-1]["role"] == "assistant"
        assert row["n_turns"] == sum(m["role"] == "assistant" for m in row["messages"])
        assert tiny_tokenizer.apply_chat_template(row["messages"], tokenize=True)
    store.close()
