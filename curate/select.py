"""Selection: run a policy (one `.sql` file) over a scoring run and store its choice per question.

A policy is a single SELECT with the contract of sql/policies/: parameters `$run_id, $dataset,
$k, $seed` (it binds the ones it uses) and one row per question with the columns in `COLUMNS`.
The built-in ones sit in sql/policies/; a user policy is any `.sql` file with the same contract.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from . import queries
from .runs import resolve_run
from .store import Store

PARAMETERS = ("run_id", "dataset", "k", "seed")
COLUMNS = ("dataset", "question_id", "trajectory_id", "nll", "rank", "candidates", "reason")
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Policy:
    """A selection policy: its name, its SQL, where the SQL came from and the parameters it binds."""

    name: str
    sql: str
    source: str
    parameters: frozenset[str]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class SelectConfig:
    """What to select: policy (name or .sql path), scoring run (id, or a student's latest),
    data set (None: all), K (None: all samples), seed, and the selection id (None: default_name)."""

    policy: str = "min_nll"
    run: str | None = None
    student: str | None = None
    dataset: str | None = None
    k: int | None = None
    seed: int = DEFAULT_SEED
    name: str | None = None


@dataclass(frozen=True)
class Stored:
    """A selection just written to the store."""

    selection_id: str
    replaced: bool


def builtin_policies() -> list[str]:
    """Names of the policies shipped in sql/policies/."""
    return queries.sql_names("policies")


def load_policy(spec: str | Path) -> Policy:
    """A built-in policy by name, or a user's `.sql` file by path; checked against the contract."""
    path = Path(spec)
    if path.suffix == ".sql" or len(path.parts) > 1:
        if not path.is_file():
            raise FileNotFoundError(f"policy file {spec}: no such file")
        name, sql, source = path.stem, path.read_text(), str(path.resolve())
    elif str(spec) in builtin_policies():
        name, sql, source = str(spec), queries.sql_text(f"policies/{spec}"), f"sql/policies/{spec}.sql"
    else:
        raise ValueError(
            f"unknown policy {str(spec)!r}: built-in policies are {', '.join(builtin_policies())}, "
            "or pass the path of a .sql file with the same contract"
        )
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise ValueError(f"policy {source}: {error}") from error
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise ValueError(f"policy {source}: must be exactly one SELECT statement, found {len(statements)} statement(s)")
    used = frozenset(statements[0].named_parameters)
    if used - set(PARAMETERS):
        raise ValueError(
            f"policy {source}: unknown parameter(s) {', '.join('$' + p for p in sorted(used - set(PARAMETERS)))}; "
            f"policies take {', '.join('$' + p for p in PARAMETERS)}"
        )
    return Policy(name, sql, source, used)


def run_policy(
    con: duckdb.DuckDBPyConnection,
    policy: str | Path | Policy,
    run_id: str,
    dataset: str | None = None,
    k: int | None = None,
    seed: int = DEFAULT_SEED,
) -> pl.DataFrame:
    """One row per question: the trajectory the policy chooses (or NULL) and why."""
    policy = policy if isinstance(policy, Policy) else load_policy(policy)
    con.execute(queries.sql_text("selection/macros"))
    values = {"run_id": run_id, "dataset": dataset, "k": k, "seed": seed}
    try:
        rows = queries.frame(con, policy.sql, {p: values[p] for p in policy.parameters})
    except duckdb.Error as error:
        raise ValueError(f"policy {policy.source}: {error}") from error
    missing = [c for c in COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(
            f"policy {policy.source}: output lacks column(s) {', '.join(missing)}; "
            f"a policy returns {', '.join(COLUMNS)}"
        )
    rows = rows.select(COLUMNS)
    repeated = rows.group_by("dataset", "question_id").len().filter(pl.col("len") > 1).sort("dataset", "question_id")
    if repeated.height:
        first = repeated.row(0, named=True)
        raise ValueError(
            f"policy {policy.source}: {repeated.height} question(s) have more than one row "
            f"(first: {first['dataset']}/{first['question_id']}); a policy returns one row per question"
        )
    if rows["reason"].null_count():
        raise ValueError(f"policy {policy.source}: {rows['reason'].null_count()} row(s) without a reason")
    return rows


def default_name(policy: Policy, run_id: str, dataset: str | None, k: int | None, seed: int | None) -> str:
    """A readable selection id: policy, run, then only the parameters that narrow or change it."""
    parts = [policy.name, run_id]
    if dataset is not None:
        parts.append(dataset)
    if k is not None:
        parts.append(f"k{k}")
    if seed is not None:
        parts.append(f"seed{seed}")
    return ":".join(parts)


def audit(con: duckdb.DuckDBPyConnection, selection_id: str | None = None) -> pl.DataFrame:
    """Rows the sql/checks/ audit queries return (all selections, or one): empty when all is well."""
    found = []
    for name in queries.sql_names("checks"):
        # every check returns selection_id: filtering around it lets DuckDB skip other selections
        text = queries.sql_text(f"checks/{name}").strip().rstrip(";")
        rows = queries.frame(
            con, f"SELECT * FROM (\n{text}\n) WHERE $s IS NULL OR selection_id = $s", {"s": selection_id}
        )
        found.append(rows.select(pl.lit(name).alias("check"), pl.all()))
    return pl.concat(found, how="vertical_relaxed").sort("check", "selection_id", "dataset", "question_id")


def select(store: Store, config: SelectConfig) -> Stored:
    """Run a policy and store its rows as one selection; an existing one of that name is replaced
    in the same transaction, so readers see the old selection or the new one, never a mix."""
    policy = load_policy(config.policy)
    run_id = resolve_run(store.con, config.run, config.student)
    dataset, k = config.dataset, config.k
    rows = run_policy(store.con, policy, run_id, dataset, k, config.seed)
    if rows.is_empty():
        where = f"data set {dataset!r}" if dataset is not None else "this store"
        raise ValueError(f"policy {policy.name}: no questions to select from in {where}")
    # a seed the policy never reads is not part of the selection
    seed = config.seed if "seed" in policy.parameters else None
    selection_id = config.name or default_name(policy, run_id, dataset, k, seed)
    params = {
        "policy": policy.name,
        "policy_file": policy.source,
        "policy_sha256": policy.sha256,
        "run_id": run_id,
        "dataset": dataset,
        "k": k,
        "seed": seed,
    }
    with store.transaction() as con:
        replaced = bool(
            con.execute(
                "DELETE FROM selections WHERE selection_id = $id RETURNING selection_id", {"id": selection_id}
            ).fetchall()
        )
        con.execute("DELETE FROM selection_rows WHERE selection_id = $id", {"id": selection_id})
        con.execute(
            "INSERT INTO selections VALUES ($id, $policy, $run, $dataset, $k, $seed, $params, $now)",
            {
                "id": selection_id,
                "policy": policy.name,
                "run": run_id,
                "dataset": dataset,
                "k": k,
                "seed": seed,
                "params": json.dumps(params),
                "now": datetime.now(),
            },
        )
        con.register("policy_rows", rows.to_arrow())
        con.execute(
            "INSERT INTO selection_rows SELECT $id, dataset, question_id, trajectory_id, nll, rank,"
            " candidates, reason FROM policy_rows",
            {"id": selection_id},
        )
        con.unregister("policy_rows")
        problems = audit(con, selection_id)
        if problems.height:
            first = problems.row(0, named=True)
            raise ValueError(
                f"policy {policy.source}: {problems.height} row(s) fail sql/checks/ (first: {first['check']}: "
                f"{first['dataset']}/{first['question_id']} {first['trajectory_id']}: {first['problem']}); nothing stored"
            )
    return Stored(selection_id, replaced)


def selections(con: duckdb.DuckDBPyConnection, selection_id: str | None = None) -> pl.DataFrame:
    """Stored selections with their counts, newest first."""
    return queries.run(con, "selection/list", selection_id=selection_id)


def require_selection(con: duckdb.DuckDBPyConnection, selection_id: str) -> dict:
    """The selections row of one stored selection; a clear error naming it when there is none."""
    found = queries.frame(con, "SELECT * FROM selections WHERE selection_id = $id", {"id": selection_id})
    if found.is_empty():
        raise ValueError(f"no selection {selection_id!r} in this store (list them with `curate selections`)")
    return found.row(0, named=True)


def describe(con: duckdb.DuckDBPyConnection, selection_id: str) -> list[str]:
    """Lines that say what a stored selection holds: parameters, counts, counts per reason."""
    s = selections(con, selection_id).row(0, named=True)
    lines = [
        f"selection {s['selection_id']}: policy {s['policy']}, run {s['run_id']} (student {s['student']}), "
        f"data set {s['dataset'] or 'all'}, K {'all' if s['k'] is None else s['k']}"
        + ("" if s["seed"] is None else f", seed {s['seed']}"),
        f"  questions {s['questions']}, selected {s['selected']}, no clean candidate {s['no_candidate']}",
    ]
    reasons = queries.run(con, "selection/reasons", selection_id=selection_id)
    width = len(str(reasons["questions"].max()))
    lines += [f"    {n:>{width}}  {reason}" for reason, _selected, n in reasons.iter_rows()]
    unscored = queries.run(con, "selection/unscored", selection_id=selection_id).item()
    if unscored:
        lines.append(
            f"  warning: {unscored} clean trajectories within K have no score in run {s['run_id']} and were not candidates"
        )
    return lines
