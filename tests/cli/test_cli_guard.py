"""The CLI's error paths, over every subcommand in `curate.cli.COMMANDS` (nested ones too, and any
added later): a --db that is no store, a missing input and a bad parameter each end with exit 2 and
exactly one line on stderr, no traceback, and no model built or loaded before the bad input is
found. Every numeric option either carries its bounds (`curate.cli.bounds`), from which the values
it must refuse are derived, or is a seed, or is checked by its command (`CHECKED`). Runs
`curate.cli.main` in-process; Hypothesis draws the bad parameters."""

from __future__ import annotations

import argparse
import io
import sqlite3
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from train_rows import export_rows, write_export

from curate.cli import build_parser, main
from curate.cli.bounds import Number, Text

SMALL_RUNS = Path(__file__).parents[1] / "data" / "bad" / "score_yes.jsonl"
# Dests that name an input file or folder (or a model, which is one): given a missing path each.
INPUTS = {
    "paths",
    "data",
    "adapter",
    "file",
    "teacher",
    "base",
    "student",
    "train_student",
    "questions",
    "benchmarks",
    "corpus",
}


def leaves() -> list[tuple[list[str], argparse.ArgumentParser]]:
    """(argv prefix, parser) of every runnable subcommand, e.g. (["model", "smollm2"], ...)."""
    found = []

    def walk(prefix: list[str], parser: argparse.ArgumentParser) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found.append((prefix, parser))
        for action in subs:
            for name, sub in action.choices.items():
                walk([*prefix, name], sub)

    walk([], build_parser())
    return found


LEAVES = leaves()
IDS = [" ".join(prefix) for prefix, _ in LEAVES]


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


def flag(action: argparse.Action) -> str | None:
    return action.option_strings[0] if action.option_strings else None


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real store, files that are no store, and a folder for outputs."""
    folder = tmp_path_factory.mktemp("guard")
    store = folder / "s.duckdb"
    assert main(["ingest", str(SMALL_RUNS), "--db", str(store), "--dataset", "d", "--quiet"]) == 0
    (folder / "notes.txt").write_text("not a store\n")
    (folder / "questions.jsonl").write_text('{"question": "What is 2 + 2?", "answer": "4"}\n')
    (folder / "a-folder").mkdir()
    with sqlite3.connect(folder / "app.sqlite") as con:
        con.execute("CREATE TABLE t (x)")
    export = write_export(folder / "export", export_rows(2))
    adapter = folder / "adapter"  # as far as `curate merge` looks before it needs --base
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    return {
        "folder": folder,
        "store": store,
        "text": folder / "notes.txt",
        "dir": folder / "a-folder",
        "sqlite": folder / "app.sqlite",
        "missing": folder / "nowhere" / "s.duckdb",
        "export": export,
        "adapter": adapter,
        "questions": folder / "questions.jsonl",
    }


def valid(action: argparse.Action, work: dict[str, Path]) -> list[str]:
    """A value a required argument accepts (outputs go to fresh paths that are never reached)."""
    out = str(work["folder"] / "out" / (action.dest + ".parquet" if action.dest == "to" else action.dest))
    values = {
        "questions": str(work["questions"]) if action.type is None else "2",  # a file, or a count
        "k": "2",
        "dataset": "d",
        "student": "tiny",
        "policy": "min_nll",
        "selections": "x",
        "query": "SELECT 1",
        "model": "tiny",
        "benchmarks": str(work["questions"]),
        "runs": "eval-0",
        "paths": str(SMALL_RUNS),
        "data": str(work["export"]),
        "adapter": str(work["adapter"]),
        "to": out,
        "out": out,
        "dir": out,
    }
    assert action.dest in values, f"add a valid value for the required argument {action.dest!r} to this test"
    return [*([flag(action)] if flag(action) else []), values[action.dest]]


# One of two options a command needs (export: --policy or --selection), options an input of a command
# needs beside it, and the argument a tested input takes the place of.
ALSO = {"export": ["--policy", "min_nll"], "generate": ["--tools", "python"]}
ALSO_WITH = {
    ("train", "teacher"): ["--loss", "sad_kl"],
    ("generate", "corpus"): ["--tools", "python,web_search"],
    ("eval", "corpus"): ["--tools", "python,web_search"],
}
REPLACES = {"file": "query"}


def required(parser: argparse.ArgumentParser, work: dict[str, Path], skip: str = "") -> list[str]:
    """Values for the required arguments (and for optional positionals such as `curate sql`'s query)."""
    dropped = {skip, REPLACES.get(skip)}
    needed = [a for a in options(parser) if (a.required or not a.option_strings) and a.dest not in dropped]
    command = parser.prog.split()[1]
    return [*(v for a in needed for v in valid(a, work)), *ALSO.get(command, []), *ALSO_WITH.get((command, skip), [])]


def fails_in_one_line(argv: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Run `curate argv` with an empty model cache: exit 2, one stderr line, nothing built; the line."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("CURATE_CACHE", str(cache))
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
    text = err.getvalue()
    assert code == 2 and text.count("\n") == 1 and "Traceback" not in text, (argv, code, text)
    assert text.startswith(f"curate {argv[0]}"), text
    assert not cache.exists() or not any(cache.iterdir()), f"{argv}: built a model before failing"
    return text


def test_every_subcommand_takes_debug() -> None:
    for prefix, parser in LEAVES:
        assert "--debug" in {s for a in options(parser) for s in a.option_strings}, prefix


@pytest.mark.parametrize(("prefix", "parser"), LEAVES, ids=IDS)
def test_a_db_that_is_no_store(prefix, parser, work, monkeypatch, tmp_path) -> None:
    if not any(a.dest == "db" for a in options(parser)):
        pytest.skip(f"curate {' '.join(prefix)} has no --db")
    for kind in ("text", "dir", "sqlite", "missing"):
        line = fails_in_one_line([*prefix, *required(parser, work), "--db", str(work[kind])], monkeypatch, tmp_path)
        assert str(work[kind]) in line, (kind, line)
    assert not work["missing"].parent.exists()
    with pytest.raises(Exception, match="a SQLite database, not a DuckDB store"):
        main([*prefix, *required(parser, work), "--db", str(work["sqlite"]), "--debug"])


@pytest.mark.parametrize(("prefix", "parser"), LEAVES, ids=IDS)
def test_a_missing_input(prefix, parser, work, monkeypatch, tmp_path) -> None:
    inputs = [a for a in options(parser) if a.dest in INPUTS and a.type is None]  # not a count of questions
    if not inputs:
        pytest.skip(f"curate {' '.join(prefix)} reads no input file")
    db = ["--db", str(work["store"])] if any(a.dest == "db" for a in options(parser)) else []
    for action in inputs:
        missing = str(work["folder"] / f"missing-{action.dest}")
        value = [flag(action), missing] if flag(action) else [missing]
        argv = [*prefix, *required(parser, work, skip=action.dest), *value, *db]
        line = fails_in_one_line(argv, monkeypatch, tmp_path)
        assert missing in line, (action.dest, line)


def junk(action: argparse.Action) -> st.SearchStrategy[str]:
    """Text the option's type or choices refuse."""

    def refused(text: str) -> bool:
        if action.choices is not None:
            return text not in action.choices
        try:
            action.type(text)
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            return True
        return False

    return st.text(max_size=12).filter(refused)


TYPED = [
    (prefix, parser, a)
    for prefix, parser in LEAVES
    for a in options(parser)
    if a.option_strings
    and a.nargs != 0
    and (a.choices is not None or a.type in (int, float) or isinstance(a.type, (Number, Text)))
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(TYPED), data=st.data())
def test_a_bad_typed_parameter(case, data, work, monkeypatch, tmp_path) -> None:
    prefix, parser, action = case
    value = data.draw(junk(action))
    argv = [*prefix, *required(parser, work), f"{action.option_strings[0]}={value}"]
    line = fails_in_one_line(argv, monkeypatch, tmp_path)
    assert line.startswith(f"curate {' '.join(prefix)}: error: argument {'/'.join(action.option_strings)}: "), line


def not_shard(text: str) -> bool:
    i, _, n = text.partition("/")
    return not (i.isascii() and i.isdigit() and n.isascii() and n.isdigit() and int(i) < int(n))


# Options whose values the commands check themselves: strategies for values they refuse.
CHECKED = {
    ("sql", "--param"): st.text(max_size=10).filter(lambda t: not t.partition("=")[0].isidentifier() or "=" not in t),
    ("score", "--shard"): st.text(max_size=8).filter(not_shard),
    ("train", "--loss"): st.text(max_size=12).filter(
        lambda t: t not in ("smartad", "uniform", "sad") and not t.startswith(("custom:", "sad_kl"))
    ),
    ("train", "--truncation"): st.text(max_size=8).filter(lambda t: t not in ("end", "drop")),
    ("train", "--profile"): st.text(min_size=1, max_size=8).filter(
        lambda t: t not in ("smolagents", "smolagents_new", "mint")
    ),
    ("train", "--epochs"): st.integers(max_value=0).map(str),
    ("score", "--max-length"): st.integers(max_value=1).map(str),
    ("score", "--batch-tokens"): st.integers(max_value=0).map(str),
    ("score", "--part-size"): st.integers(max_value=0).map(str),
    ("select", "--policy"): st.sampled_from(["nope", "min_nll; DROP TABLE x", "../../etc/passwd"]),
}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(sorted(CHECKED)), data=st.data())
def test_a_bad_checked_parameter(case, data, work, monkeypatch, tmp_path) -> None:
    name, option = case
    parser = dict((tuple(p), parser) for p, parser in LEAVES)[(name,)]
    base = (
        [name, *required(parser, work), "--db", str(work["store"])]
        if name != "train"
        else [name, *required(parser, work)]
    )
    fails_in_one_line([*base, f"{option}={data.draw(CHECKED[case])}"], monkeypatch, tmp_path)


def test_the_installed_command_fails_in_one_line(work) -> None:
    curate = Path(sys.executable).with_name("curate")
    done = subprocess.run(
        [str(curate), "stats", "--db", str(work["sqlite"])], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"curate stats: error: {work['sqlite']}: a SQLite database, not a DuckDB store; "
        "give --db a store curate wrote\n"
    )


def test_every_numeric_option_is_bounded() -> None:
    free = [
        (" ".join(prefix), flag(a))
        for prefix, parser in LEAVES
        for a in options(parser)
        if a.type in (int, float) and a.dest != "seed" and (prefix[0], flag(a)) not in CHECKED
    ]
    assert free == [], "give these options a curate.cli.bounds type (or a check of their command in CHECKED)"


BOUNDED = [(prefix, parser, a) for prefix, parser in LEAVES for a in options(parser) if isinstance(a.type, Number)]
NAMED = [(prefix, parser, a) for prefix, parser in LEAVES for a in options(parser) if isinstance(a.type, Text)]


def outside(kind: Number) -> list[str]:
    """Values just past each end (the end itself where it is open); nan and inf for floats."""
    step = 1 if kind.kind is int else 0.5
    ends = [] if kind.low is None else [kind.low if kind.open_low else kind.low - step]
    ends += [] if kind.high is None else [kind.high if kind.open_high else kind.high + step]
    return [str(kind.kind(v)) for v in ends]


def usage_line(prefix: list[str], action: argparse.Action, message: str) -> str:
    command = "curate " + " ".join(prefix)
    return f"{command}: error: argument {'/'.join(action.option_strings)}: {message} (see {command} --help)\n"


@pytest.mark.parametrize(
    ("prefix", "parser", "action"), BOUNDED, ids=[f"{' '.join(p)} {flag(a)}" for p, _, a in BOUNDED]
)
def test_a_value_out_of_bounds(prefix, parser, action, work, monkeypatch, tmp_path) -> None:
    kind = action.type
    assert action.default is None or kind.holds(action.default), (action.default, kind)
    for value in outside(kind):
        line = fails_in_one_line([*prefix, *required(parser, work), f"{flag(action)}={value}"], monkeypatch, tmp_path)
        assert line == usage_line(prefix, action, f"must be {kind.range()}, got {value}")
    if kind.kind is float:
        for value in ("nan", "inf", "-inf"):
            line = fails_in_one_line(
                [*prefix, *required(parser, work), f"{flag(action)}={value}"], monkeypatch, tmp_path
            )
            assert line == usage_line(prefix, action, f"must be a finite number, got {value}")


@pytest.mark.parametrize(("prefix", "parser", "action"), NAMED, ids=[f"{' '.join(p)} {flag(a)}" for p, _, a in NAMED])
def test_an_empty_name(prefix, parser, action, work, monkeypatch, tmp_path) -> None:
    for value in ("", " "):
        line = fails_in_one_line([*prefix, *required(parser, work), f"{flag(action)}={value}"], monkeypatch, tmp_path)
        assert line == usage_line(prefix, action, f"must not be empty, got {value!r}")


# The cases of the report that found these options unchecked, with their exact lines.
REPORTED = [
    (["generate", "--slots", "0"], "argument --slots: must be at least 1, got 0"),
    (["generate", "--limit", "0"], "argument --limit: must be at least 1, got 0"),
    (["generate", "--max-steps", "0"], "argument --max-steps: must be at least 1, got 0"),
    (["generate", "--temperature", "nan"], "argument --temperature: must be a finite number, got nan"),
    (["generate", "--temperature", "-1"], "argument --temperature: must be at least 0, got -1"),
    (["generate", "--top-p", "0"], "argument --top-p: must be in (0, 1], got 0"),
    (["generate", "--top-p", "5"], "argument --top-p: must be in (0, 1], got 5"),
    (["generate", "--max-new-tokens", "0"], "argument --max-new-tokens: must be at least 1, got 0"),
    (["generate", "--dataset", ""], "argument --dataset: must not be empty, got ''"),
    (["eval", "--top-p", "5"], "argument --top-p: must be in (0, 1], got 5"),
    (["eval", "--limit", "0"], "argument --limit: must be at least 1, got 0"),
    (["replay", "--dataset", ""], "argument --dataset: must not be empty, got ''"),
    (["score", "--dataset", ""], "argument --dataset: must not be empty, got ''"),
]


@pytest.mark.parametrize(("argv", "message"), REPORTED, ids=[" ".join(a) for a, _ in REPORTED])
def test_reported_bounds(argv, message, work, monkeypatch, tmp_path) -> None:
    parser = dict((tuple(p), parser) for p, parser in LEAVES)[(argv[0],)]
    db = ["--db", str(work["store"])]
    line = fails_in_one_line([argv[0], *required(parser, work), *db, *argv[1:]], monkeypatch, tmp_path)
    assert line == f"curate {argv[0]}: error: {message} (see curate {argv[0]} --help)\n"
