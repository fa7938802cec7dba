"""Export a selection as a Hugging Face dataset: a folder, a parquet file, or a Hub repository.

Rows are the chosen trajectories in the conversational form TRL's SFTTrainer takes (`messages`:
a list of {role, content}, role mapping of `curate.render.chat_messages`), plus where each came
from. Beside the data go a dataset card (README.md with the YAML header the Hub reads) stating
the provenance, and the resolved config as JSON.

Targets (`--to`): `DIR` (a `save_to_disk` folder with DIR/README.md and DIR/export_config.json),
`FILE.parquet` (card and config beside it as FILE.README.md and FILE.export_config.json), or
`hub:ORG/NAME`: the export is first written to a local folder (kept whatever happens) holding the
`save_to_disk` files plus data/train-00000-of-00001.parquet, then the card, config and parquet
are uploaded with `huggingface_hub` under the saved login or HF_TOKEN.
"""

from __future__ import annotations

import json
import shlex
import shutil
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from . import __version__, queries
from .output import naming
from .render import stored_chats
from .render.tokenized import COLUMNS_DOC as TOKEN_COLUMNS_DOC
from .select import SelectConfig, describe, require_selection, select, selections
from .store import Store

HUB_PREFIX = "hub:"
CONFIG_NAME = "export_config.json"
HUB_PARQUET = "data/train-00000-of-00001.parquet"
HUB_FILES = ["README.md", CONFIG_NAME, "data/*.parquet"]
RENDER_BATCH = 5_000
COLUMNS_DOC = {
    "messages": "the conversation, role mapping applied: list of {role, content} (TRL SFTTrainer conversational format)",
    "question_id": "question id within its data set",
    "dataset": "data set the question belongs to",
    "trajectory_id": "trajectory id in the curate store",
    "sample_idx": "0-based sample number of this trajectory among its question's teacher samples",
    "nll": "trajectory NLL under the student: macro average of per-assistant-turn mean token NLL",
    "n_turns": "assistant turns",
    "policy": "selection policy",
    "student": "student model the NLL was measured with",
    "k": "samples per question considered (sample_idx < k; null: all)",
    "profile": "marker profile of the trajectory (smolagents, smolagents_new, mint): where `curate train` finds action and final spans",
}


@dataclass(frozen=True)
class ExportConfig:
    """What to export and where: a stored selection, or a new one made with `select` first."""

    to: str
    selection: str | None = None
    select: SelectConfig | None = None
    private: bool = False
    license: str = "other"
    local: str | None = None
    tokenized: bool = False  # add input_ids, completion_mask and segments (curate.render.tokenized)
    tokenizer: str | None = None  # the student that renders them (None: the scoring run's student)


@dataclass(frozen=True)
class Exported:
    """What an export wrote: the local data path, its card, and the Hub repo when pushed."""

    selection_id: str
    rows: int
    no_candidate: int
    path: Path
    card: Path
    repo_id: str | None = None


@dataclass(frozen=True)
class Tokens:
    """The student whose tokenizer renders a tokenized export, the tokenizer, and its sha256."""

    student: str
    tokenizer: Any
    sha256: str


def load_tokens(con: duckdb.DuckDBPyConnection, selection: dict, student: str | None) -> Tokens:
    """The tokenizer of `student`, or of the student that scored the selection's run."""
    from transformers import AutoTokenizer

    from .models import resolve_student
    from .score import tokenizer_hash

    if student is None:
        student = queries.frame(
            con, "SELECT student FROM scoring_runs WHERE run_id = $r", {"r": selection["run_id"]}
        ).item()
    tokenizer = AutoTokenizer.from_pretrained(resolve_student(student))
    return Tokens(student, tokenizer, tokenizer_hash(tokenizer))


def build_dataset(con: duckdb.DuckDBPyConnection, selection_id: str, tokenizer: Any = None):
    """The chosen trajectories of a selection as a `datasets.Dataset` (rendered chat + provenance,
    plus the token columns of curate.render.tokenized when a tokenizer is given)."""
    from datasets import Dataset, Features, List, Value
    from tqdm import tqdm

    rows = queries.run(con, "selection/export_rows", selection_id=selection_id)
    ids = rows["trajectory_id"].to_list()
    chats: dict[str, list[dict[str, str]]] = {}
    with tqdm(total=len(ids), desc="render chats", unit="traj", disable=None) as bar:
        for start in range(0, len(ids), RENDER_BATCH):
            batch = ids[start : start + RENDER_BATCH]
            chats.update(stored_chats(con, batch))
            bar.update(len(batch))
    features = Features(
        {
            "messages": List({"role": Value("string"), "content": Value("string")}),
            "question_id": Value("string"),
            "dataset": Value("string"),
            "trajectory_id": Value("string"),
            "sample_idx": Value("int32"),
            "nll": Value("float64"),
            "n_turns": Value("int32"),
            "policy": Value("string"),
            "student": Value("string"),
            "k": Value("int32"),
            "profile": Value("string"),
        }
    )
    columns = {"messages": [chats[t] for t in ids], **rows.to_dict(as_series=False)}
    if tokenizer is not None:
        from .render.tokenized import token_columns

        columns.update(token_columns(tokenizer, zip(columns["messages"], columns["profile"])))
        features.update({name: List(Value("int32")) for name in TOKEN_COLUMNS_DOC})
    return Dataset.from_dict({name: columns[name] for name in features}, features=features)


def size_category(n: int) -> str:
    """The Hub's size_categories bucket for n rows."""
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
    ]
    return next((label for bound, label in bounds if n < bound), "10M<n<100M")


def reproduce_command(
    store: Store, selection: dict, to: str, private: bool, tokens: Tokens | None = None, run_student: str | None = None
) -> str:
    """The `curate export` command line that makes this selection and export again (a tokenized export
    by another student than the run's: the command that exports the stored selection)."""
    if tokens is not None and tokens.student != run_student:
        return shlex.join(
            [
                "curate",
                "export",
                "--db",
                str(store.path),
                "--selection",
                selection["selection_id"],
                "--tokenized",
                "--student",
                tokens.student,
                "--to",
                to,
            ]
            + (["--private"] if private else [])
        )
    params = json.loads(selection["params"])
    builtin = params["policy_file"].startswith("sql/policies/")
    argv = [
        "curate",
        "export",
        "--db",
        str(store.path),
        "--policy",
        params["policy"] if builtin else params["policy_file"],
        "--run",
        selection["run_id"],
    ]
    for flag, value in (("--dataset", selection["dataset"]), ("--k", selection["k"]), ("--seed", selection["seed"])):
        if value is not None:
            argv += [flag, str(value)]
    argv += ["--name", selection["selection_id"], "--to", to] + (["--private"] if private else [])
    return shlex.join(argv + (["--tokenized"] if tokens is not None else []))


def _table(header: list[str], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


TRL_TOKENIZED = (
    "; the token columns train exactly the scored tokens under `SFTConfig(completion_only_loss=True)`, "
    "and `curate.train.trl.SegmentWeightedSFTTrainer` adds the SmartAD segment weights"
)


def card_text(
    store: Store, selection: dict, rows: int, config: ExportConfig, hub_data: bool, tokens: Tokens | None = None
) -> str:
    """The dataset card: YAML header for the Hub, then provenance, counts, columns and the command."""
    from huggingface_hub import DatasetCardData

    con = store.con
    sid = selection["selection_id"]
    counts = selections(con, sid).row(0, named=True)
    params = json.loads(selection["params"])
    run = queries.frame(con, "SELECT * FROM scoring_runs WHERE run_id = $r", {"r": selection["run_id"]}).row(
        0, named=True
    )
    sources = queries.run(con, "selection/sources", selection_id=sid)
    teachers = sources.group_by("teacher_model").agg(pl.col("trajectories").sum()).sort("teacher_model")
    reasons = queries.run(con, "selection/reasons", selection_id=sid)
    header = DatasetCardData(
        license=config.license,
        pretty_name=f"{params['policy']} selection {sid}",
        task_categories=["text-generation"],
        tags=["agent-distillation", "trajectories", "curate", f"policy-{params['policy']}"],
        size_categories=[size_category(rows)],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}]
        if hub_data
        else None,
    )
    parameters = [
        ("selection", sid),
        ("policy", f"{params['policy']} ({params['policy_file']}, sha256 {params['policy_sha256'][:12]})"),
        ("scoring run", selection["run_id"]),
        ("student", counts["student"]),
        ("student weights sha256", run["weights_hash"]),
        ("scoring backend", f"{run['backend']} {run['dtype']}, max_length {run['max_length']}"),
        ("teacher model(s)", ", ".join(str(t) for t in teachers["teacher_model"].to_list()) or "none"),
        ("data set", selection["dataset"] or "all"),
        ("K", "all" if selection["k"] is None else selection["k"]),
        ("seed", "not used" if selection["seed"] is None else selection["seed"]),
        ("selected at", selection["created_at"]),
        ("curate", __version__),
    ]
    columns = dict(COLUMNS_DOC)
    if tokens is not None:
        parameters += [("tokenized with", tokens.student), ("tokenizer sha256", tokens.sha256)]
        columns.update(TOKEN_COLUMNS_DOC)
    body = f"""
# {sid}

Teacher-agent trajectories, one per question, chosen by the `{params["policy"]}` selection policy from
the clean (correct, no parse error, no max-steps) teacher samples scored by the student
`{counts["student"]}`. Exported by `curate export` from a DuckDB trajectory store.

## Provenance

{_table(["", ""], parameters)}

## Counts

{counts["questions"]} questions; {rows} exported (one trajectory each); {counts["no_candidate"]} with no clean
candidate, not exported:

{_table(["reason", "selected", "questions"], reasons.rows())}

## Source files

{_table(["file", "sha256", "format", "teacher", "trajectories"], [(f, (h or "")[:12], fmt, t, n) for f, h, fmt, t, n in sources.rows()])}

## Columns

{_table(["column", "meaning"], list(columns.items()))}

## Reproduce

```
{reproduce_command(store, selection, config.to, config.private, tokens, counts["student"])}
```

Load: `datasets.load_from_disk(DIR)` for a folder export, `datasets.load_dataset("ORG/NAME")` from the Hub;
train with `trl.SFTTrainer(train_dataset=...)` (conversational `messages` column{TRL_TOKENIZED if tokens else ""}).
"""
    return f"---\n{header.to_yaml()}\n---\n{body}"


@dataclass(frozen=True)
class Target:
    """Where an export goes, checked before anything is selected or written."""

    kind: str  # folder | parquet | hub
    path: Path  # the folder, the parquet file, or the Hub export's local folder
    repo_id: str | None = None

    @property
    def companions(self) -> tuple[Path, Path]:
        """A parquet export's card and config, written beside it as FILE.README.md, FILE.export_config.json."""
        stem = self.path.with_suffix("")
        return stem.with_name(f"{stem.name}.README.md"), stem.with_name(f"{stem.name}.{CONFIG_NAME}")


def hub_repo_id(to: str) -> str:
    """The ORG/NAME of a `hub:ORG/NAME` target, refused unless the Hub would accept it."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    repo_id = to.removeprefix(HUB_PREFIX)
    if repo_id.count("/") != 1:
        raise ValueError(f"--to {to}: a Hub target is hub:ORG/NAME")
    try:
        # The Hub's own rule (letters, digits, - _ .; no '..'), which also keeps the local copy
        # exports/ORG/NAME inside exports/.
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"--to {to}: not a Hub repo id ({error})") from None
    return repo_id


def _replaceable(path: Path) -> None:
    """Refuse to overwrite anything but an earlier curate export folder (or an empty one)."""
    if path.exists() and not (path.is_dir() and ((path / CONFIG_NAME).is_file() or not any(path.iterdir()))):
        raise ValueError(f"{path} exists and is not a curate export folder; choose another --to or remove it")


def resolve_target(config: ExportConfig) -> Target:
    """Parse `--to` and refuse a target that would overwrite anything but an earlier curate export."""
    if config.to.startswith(HUB_PREFIX):
        repo_id = hub_repo_id(config.to)
        found = Target("hub", Path(config.local) if config.local else Path("exports") / repo_id, repo_id)
        _replaceable(found.path)
        return found
    path = Path(config.to)
    if path.suffix != ".parquet":
        _replaceable(path)
        return Target("folder", path)
    found = Target("parquet", path)
    card, resolved = found.companions
    # The config file beside it marks an earlier curate export, whose three files are replaced together.
    if not resolved.is_file():
        for taken in (path, card):
            if taken.exists():
                raise ValueError(
                    f"{taken} exists and is not part of a curate export (no {resolved.name} beside "
                    "it); choose another --to or remove it"
                )
    if path.is_dir():
        raise ValueError(f"{path} is a folder; a parquet export is a file: choose another --to")
    return found


def write_folder(dataset, folder: Path, card: str, resolved: dict, hub_data: bool) -> None:
    """Write a `save_to_disk` folder with README.md and the resolved config, replacing an earlier export whole."""
    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with naming(folder):
            dataset.save_to_disk(str(partial))
            if hub_data:
                (partial / HUB_PARQUET).parent.mkdir(parents=True)
                dataset.to_parquet(str(partial / HUB_PARQUET))
            (partial / "README.md").write_text(card)
            (partial / CONFIG_NAME).write_text(json.dumps(resolved, indent=2, default=str))
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # a failed export (disk full, ^C) leaves nothing behind
        raise
    if folder.exists():
        shutil.rmtree(folder)
    partial.rename(folder)


def write_parquet(dataset, found: Target, card: str, resolved: dict) -> None:
    """Write FILE.parquet and its card and config, each through a temporary file renamed into place."""
    found.path.parent.mkdir(parents=True, exist_ok=True)
    card_path, config_path = found.companions
    paths = [found.path, card_path, config_path]
    partials = [path.with_name(f".{path.name}.partial") for path in paths]
    try:
        with naming(found.path):
            dataset.to_parquet(str(partials[0]))
            for partial, text in zip(partials[1:], (card, json.dumps(resolved, indent=2, default=str))):
                partial.write_text(text)
    except BaseException:
        for partial in partials:
            partial.unlink(missing_ok=True)
        raise
    for partial, path in zip(partials, paths):
        partial.replace(path)


def push(folder: Path, repo_id: str, private: bool, selection_id: str) -> None:
    """Upload the card, config and parquet data of a local export folder to a Hub dataset repo."""
    from huggingface_hub import HfApi

    api = HfApi()  # the saved login or HF_TOKEN; the token is never printed
    try:
        api.create_repo(repo_id, private=private, repo_type="dataset", exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="dataset",
            allow_patterns=HUB_FILES,
            commit_message=f"curate export of selection {selection_id}",
        )
    # The hub client fails in many types (HTTP, connection, missing token, offline mode); each means
    # the push did not happen, and the user needs the repo and the local copy, not a traceback.
    except Exception as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise RuntimeError(f"could not push to hub:{repo_id} ({reason}); the export is kept in {folder}") from error


def export(store: Store, config: ExportConfig) -> Exported:
    """Export a stored selection (or select first) to a folder, a parquet file or the Hub."""
    if (config.selection is None) == (config.select is None):
        raise ValueError("export needs exactly one of a stored selection (--selection) or a policy (--policy)")
    found = resolve_target(config)
    if config.select is not None:
        selection_id = select(store, config.select).selection_id
    else:
        assert config.selection is not None  # exactly one of the two, checked above
        selection_id = config.selection
    selection = require_selection(store.con, selection_id)
    tokens = load_tokens(store.con, selection, config.tokenizer) if config.tokenized else None
    dataset = build_dataset(store.con, selection_id, tokens.tokenizer if tokens else None)
    hub = found.kind == "hub"
    card = card_text(store, selection, dataset.num_rows, config, hub_data=hub, tokens=tokens)
    counts = selections(store.con, selection_id).row(0, named=True)
    resolved = {
        "export": asdict(config),
        "selection": {**selection, "params": json.loads(selection["params"])},
        "counts": counts,
        "command": reproduce_command(store, selection, config.to, config.private, tokens, counts["student"]),
        "tokens": None if tokens is None else {"student": tokens.student, "tokenizer_sha256": tokens.sha256},
        "store": str(store.path.resolve()),
        "curate_version": __version__,
        "written_at": datetime.now(),
    }
    done = {"selection_id": selection_id, "rows": dataset.num_rows, "no_candidate": counts["no_candidate"]}
    if found.kind == "parquet":
        write_parquet(dataset, found, card, resolved)
        return Exported(**done, path=found.path, card=found.companions[0])
    write_folder(dataset, found.path, card, resolved, hub_data=hub)
    if found.repo_id is not None:  # a Hub target
        push(found.path, found.repo_id, config.private, selection_id)
    return Exported(**done, path=found.path, card=found.path / "README.md", repo_id=found.repo_id)


def demo(store: Store, out_dir: Path, run_id: str | None = None, show: int = 5) -> list[str]:
    """`curate demo`'s selection step: min_nll over the store, exported to out_dir; lines to print."""
    done = export(store, ExportConfig(to=str(out_dir), select=SelectConfig(policy="min_nll", run=run_id)))
    lines = describe(store.con, done.selection_id)
    lines.append(f"exported {done.rows} trajectories to {done.path} (datasets.load_from_disk), card {done.card}")
    view = queries.run(store.con, "selection/candidate_nlls", selection_id=done.selection_id, limit=show)
    lines.append("chosen NLL vs the other candidates of the same question:")
    for row in view.iter_rows(named=True):
        if row["trajectory_id"] is None:
            lines.append(f"  {row['dataset']}/{row['question_id']}: none ({row['reason']})")
            continue
        others = ", ".join(f"{x:.3f}" for x in row["other_nlls"]) or "no other candidate"
        lines.append(
            f"  {row['dataset']}/{row['question_id']}: chosen {row['chosen_nll']:.3f} "
            f"(rank {row['rank']} of {row['candidates']}); others: {others}"
        )
    return lines
