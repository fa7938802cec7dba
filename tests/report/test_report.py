"""`curate report`: the page's numbers, the viewer's token NLLs against an independent reference,
what the viewer carries, and the page in a real headless browser (Debian's chromium via Playwright)."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from curate.cli import main
from curate.ingest.synth import SynthConfig, write
from curate.render import chat_messages
from curate.score import score_store
from curate.select import SelectConfig, select
from curate.store import Store

MAX_LENGTH = 3000  # synthetic runs fit; MINT runs (3-6k tiny-tokenizer tokens) end past the limit
BAD_LINES = [b"{not json\n", b'{"question": "q", "true_answer": "1", "log_data": {"messages": 7}}\n']
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def mint_lines(shared_data: Path, tasks: set[int], per_task: int) -> list[bytes]:
    """Real MINT GSM8K runs: the first `per_task` teacher models' runs of each of these tasks."""
    found: dict[int, list[bytes]] = {t: [] for t in tasks}
    with gzip.open(shared_data / "trajectories" / "mint" / "mint_gsm8k.jsonl.gz", "rb") as f:
        for line in f:
            task = json.loads(line)["task"]["task_id"]
            if task in found and len(found[task]) < per_task:
                found[task].append(line)
    return [line for t in sorted(found) for line in found[t]]


@pytest.fixture(scope="module")
def reported(tmp_path_factory, tiny_model_dir, shared_data):
    """A store of synthetic smolagents runs (two bad lines among them) and real MINT runs, scored
    by the tiny model, with two selections, and its report."""
    from curate.ingest import IngestOptions, ingest

    root = tmp_path_factory.mktemp("report")
    synth = root / "synth.jsonl"
    write(SynthConfig(questions=3, k=3, source="hotpotqa", seed=1, p_failed=0.0), synth)
    with synth.open("ab") as f:
        f.writelines(BAD_LINES)
    mint = root / "mint.jsonl"
    mint.write_bytes(b"".join(mint_lines(shared_data, {5, 10}, 4)))
    db = root / "store.duckdb"
    with Store(db) as store:
        quiet = IngestOptions(progress=False)
        ingest(store, [synth], "synth-hotpotqa", "smolagents", quiet)
        ingest(store, [mint], "mint-gsm8k", "mint", quiet)
    run_id = score_store(db, str(tiny_model_dir), max_length=MAX_LENGTH, progress=False).run_id
    with Store(db) as store:
        for policy in ("min_nll", "random"):
            select(store, SelectConfig(policy=policy, run=run_id, name=policy))
    out = root / "page"
    assert (
        main(["report", "--db", str(db), "--run", run_id, "--out", str(out), "--questions", "2", "--samples", "3"]) == 0
    )
    return db, run_id, out


def viewer_files(out: Path) -> list[dict]:
    """The payload of every question file of the viewer."""
    payloads = []
    for path in sorted((out / "viewer").glob("q*.js")):
        text = path.read_text(encoding="utf-8")
        start, end = text.index(", ") + 2, text.rindex(");")
        payloads.append(json.loads(text[start:end].replace("<\\/", "</")))
    return payloads


def reference_tokens(model, tokenizer, chat: list[dict], max_length: int) -> dict[int, tuple[str, list[float]]]:
    """Per assistant turn: its supervised text and each token's NLL, one full-logits pass per turn."""
    out = {}
    ends = [i for i, m in enumerate(chat) if m["role"] == "assistant"]
    for m, i in enumerate(ends):
        head = tokenizer.apply_chat_template(chat[:i], tokenize=False, add_generation_prompt=True)
        upto = tokenizer.apply_chat_template(chat[: i + 1], tokenize=False)
        start = len(tokenizer(head, add_special_tokens=False)["input_ids"])
        ids = tokenizer(upto, add_special_tokens=False)["input_ids"]
        losses = []
        if start < max_length:
            with torch.no_grad():
                logits = model(torch.tensor([ids[:max_length]])).logits[0]
            losses = torch.nn.functional.cross_entropy(
                logits[start - 1 : -1], torch.tensor(ids[start:max_length]), reduction="none"
            ).tolist()
        out[m] = (upto[len(head) :], losses)
    return out


def test_viewer_token_nll_matches_an_independent_full_logits_pass(reported, tiny_model, tiny_tokenizer):
    db, run_id, out = reported
    detailed = 0
    with Store(db, read_only=True) as store:
        for payload in viewer_files(out):
            for tid, trajectory in payload["trajectories"].items():
                raw = store.sql(
                    "SELECT norm_role, text FROM messages WHERE trajectory_id = $t ORDER BY position", t=tid
                )
                chat = chat_messages(raw.iter_rows())
                turns = [m for m in trajectory["messages"] if m["kind"] == "assistant"]
                reference = reference_tokens(tiny_model, tiny_tokenizer, chat, MAX_LENGTH)
                assert [m["turn"] for m in turns] == sorted(reference)
                for m in turns:
                    text, losses = reference[m["turn"]]
                    tokens = m["tokens"]
                    assert "".join(tokens["p"]) == text
                    scored = [x for x in tokens["n"] if x is not None]
                    assert scored == pytest.approx(losses, abs=2e-4)
                    assert tokens["n"][len(scored) :] == [None] * (len(tokens["n"]) - len(scored))
                    if scored:
                        assert sum(scored) / len(scored) == pytest.approx(
                            trajectory["stored_turns"][m["turn"]], abs=1e-4
                        )
                detailed += 1
    assert detailed == 12  # 2 questions x 3 samples in each of the two data sets


def test_viewer_marks_segments_and_observations(reported):
    _db, _run_id, out = reported
    kinds, finals = set(), []
    for payload in viewer_files(out):
        for trajectory in payload["trajectories"].values():
            kinds |= {m["kind"] for m in trajectory["messages"]}
            turns = [m["tokens"] for m in trajectory["messages"] if m["kind"] == "assistant"]
            finals.append("".join(p for t in turns for p, s in zip(t["p"], t["s"]) if s == 3))
            assert all(s in (1, 2, 3) for t in turns for s in t["s"])
    assert kinds == {"system", "task", "assistant", "observation"}
    synth_finals = [f for f in finals if "final_answer(" in f]
    assert synth_finals and all(
        f.lstrip().startswith("Code:") and f.rstrip().endswith("<end_code><|im_end|>") for f in synth_finals
    )
    assert any(f.lstrip().startswith("<solution>") for f in finals)  # MINT's answer span is the final one


def test_viewer_carries_only_the_drawn_questions(reported):
    db, run_id, out = reported
    payloads = viewer_files(out)
    with Store(db, read_only=True) as store:
        per_question = dict(
            store.sql("SELECT dataset || '/' || question_id, count(*) FROM trajectories GROUP BY 1").iter_rows()
        )
        chosen = store.sql("SELECT trajectory_id FROM selection_rows WHERE trajectory_id IS NOT NULL")
    assert sorted(p["dataset"] for p in payloads) == ["mint-gsm8k"] * 2 + ["synth-hotpotqa"] * 2
    for p in payloads:
        samples = p["samples"]
        assert len(samples) == per_question[f"{p['dataset']}/{p['question_id']}"]
        assert sorted(s["rank"] for s in samples) == list(range(1, len(samples) + 1))
        assert sum(s["detail"] for s in samples) == min(3, len(samples)) == len(p["trajectories"])
        picked = {s["trajectory_id"] for s in samples if s["chosen_by"]}
        assert picked <= set(p["trajectories"]) and picked <= set(chosen["trajectory_id"])
        by_nll = sorted(samples, key=lambda s: s["rank"])
        assert by_nll[0]["trajectory_id"] in p["trajectories"]


def test_report_errors(reported, tmp_path, capsys):
    db, run_id, _out = reported
    assert main(["report", "--db", str(db), "--run", run_id, "--out", str(tmp_path / "x"), "--selection", "nope"]) == 2
    assert "curate report: error: no selection 'nope' in this store" in capsys.readouterr().err
    assert main(["report", "--db", str(db), "--run", "missing", "--out", str(tmp_path / "y")]) == 2
    assert "no scoring run 'missing' in this store" in capsys.readouterr().err
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    assert main(["report", "--db", str(db), "--run", run_id, "--out", str(taken)]) == 2
    assert f"curate report: error: {taken} exists and is not a curate report folder" in capsys.readouterr().err
    assert [p.name for p in taken.iterdir()] == ["notes.txt"]


def test_student_not_available_gives_text_and_a_note(reported, tmp_path, capsys):
    db, run_id, first = reported
    out = tmp_path / "page"
    shutil.copytree(first, out)  # an earlier report is replaced, its extra question files go
    assert (
        main(
            [
                "report",
                "--db",
                str(db),
                "--run",
                run_id,
                "--out",
                str(out),
                "--questions",
                "1",
                "--samples",
                "1",
                "--model",
                str(tmp_path / "absent"),
                "--selection",
                "min_nll",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    note = f"Token NLLs are not shown: the run's student '{tmp_path / 'absent'}' cannot be loaded here"
    assert "report: 2 questions, 2 trajectories to open; token NLLs not shown (" in printed
    assert f"note: {note}" in printed
    assert note in (out / "index.html").read_text()
    assert len(viewer_files(out)) == 2
    for payload in viewer_files(out):
        for trajectory in payload["trajectories"].values():
            assistant = [m for m in trajectory["messages"] if m["kind"] == "assistant"]
            assert assistant and all("text" in m and "tokens" not in m for m in assistant)


def chromium() -> str:
    path = os.environ.get("CURATE_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail("no chromium found: install it with .ci/setup-browser (or set CURATE_CHROMIUM)")
    return path


def test_report_in_a_headless_browser(reported, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    db, run_id, out = reported
    shots = tmp_path_factory.mktemp("screenshots")
    with Store(db, read_only=True) as store:
        counts = store.sql(
            "SELECT dataset, count(*) AS n, round(100.0 * avg(correct::INT), 1) AS pct "
            "FROM trajectories GROUP BY 1 ORDER BY 1"
        )
        rejects = store.sql("SELECT count(*) FROM ingest_rejects").item()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((out / "index.html").as_uri())
        page.wait_for_selector("#trajectory .tok")

        header = page.locator("#store-summary thead th").all_inner_texts()
        rows = {
            r[0]: dict(zip(header, r))
            for r in (row.locator("td").all_inner_texts() for row in page.locator("#store-summary tbody tr").all())
        }
        for dataset, n, pct in counts.iter_rows():
            assert rows[dataset]["trajectories"] == str(n)
            assert rows[dataset]["correct_pct"] == f"{pct:.1f}"
        assert rows["synth-hotpotqa"]["rejects"] == str(rejects) == "2"
        reasons = page.locator("#rejects tbody tr").all_inner_texts()
        assert len(reasons) == 2 and all(r.startswith("synth-hotpotqa") for r in reasons)

        images = page.locator("img")
        assert images.count() == 3
        assert all(page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)"))

        options = page.locator("#question-select option")
        assert options.count() == 4
        page.select_option("#question-select", index=3)
        page.wait_for_selector("#samples tbody tr.openable")
        row = page.locator("#samples tbody tr.openable").last
        tid = row.get_attribute("data-trajectory")
        row.click()
        page.wait_for_selector(f"#samples tbody tr.open[data-trajectory='{tid}']")
        with Store(db, read_only=True) as store:
            tokens = store.sql(
                "SELECT sum(tokens) FROM turn_scores WHERE run_id = $r AND trajectory_id = $t", r=run_id, t=tid
            ).item()
        shaded = page.locator("#trajectory .tok[data-nll]")
        assert shaded.count() == tokens > 0
        shades = set(
            page.evaluate(
                "Array.from(document.querySelectorAll('#trajectory .tok[data-nll]')).map(t => t.style.backgroundColor)"
            )
        )
        assert len(shades) > 5
        assert page.locator("#trajectory .message.observation").count() > 0
        page.locator("#trajectory details summary").click()  # the system prompt opens
        assert page.locator("#trajectory details .text").is_visible()

        # a MINT run longer than the scoring limit: its last tokens are marked unscored
        i, cut, unscored = next(
            (i, tid, sum(n is None for m in t["messages"] if "tokens" in m for n in m["tokens"]["n"]))
            for i, payload in enumerate(viewer_files(out))
            for tid, t in payload["trajectories"].items()
            if any(n is None for m in t["messages"] if "tokens" in m for n in m["tokens"]["n"])
        )
        page.select_option("#question-select", value=str(i))
        page.locator(f"#samples tbody tr[data-trajectory='{cut}']").click()
        page.wait_for_selector(f"#samples tbody tr.open[data-trajectory='{cut}']")
        assert page.locator("#trajectory .tok.unscored").count() == unscored
        labels = " ".join(page.locator("#trajectory .message.assistant .label").all_inner_texts())
        assert sum(map(int, re.findall(r"(\d+) past the run's max length", labels))) == unscored
        # a narrow window: wide tables scroll inside themselves, the page does not scroll sideways
        page.set_viewport_size({"width": 800, "height": 1000})
        assert page.evaluate("document.documentElement.scrollWidth") == 800
        page.set_viewport_size({"width": 1400, "height": 1000})
        assert errors == []
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(shots / "report.png"), full_page=True)
        page.locator("#viewer").screenshot(path=str(shots / "viewer.png"))
        browser.close()
    assert (shots / "report.png").stat().st_size > 10_000


def test_selection_table_is_curate_compare(reported):
    from curate.compare import CompareConfig, compare
    from curate.report.report import selection_tables

    db, _run_id, _out = reported
    with Store(db, read_only=True) as store:
        tables = selection_tables(store.con, ["random", "min_nll"])
        pair = compare(store.con, CompareConfig(selections=("random", "min_nll")))
    table = tables["compare"]
    assert table.header == pair.columns and table.header[-2:] == ["same as random", "same as min_nll"]
    assert [row[0] for row in table.rows] == ["random", "min_nll"]
    for row, expected in zip(table.rows, pair.iter_rows(named=True)):
        cells = dict(zip(table.header, row))
        assert (cells["questions"], cells["selected"]) == (str(expected["questions"]), str(expected["selected"]))
        assert cells["mean_nll"] == f"{expected['mean_nll']:.3f}"
        assert cells["correct_pct"] == f"{expected['correct_pct']:.1f}"
        assert cells["easy_pct"] == f"{expected['easy_pct']:.1f}"
        assert cells["same as min_nll"] == str(expected["same as min_nll"])
