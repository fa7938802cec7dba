"""Selection policies (sql/policies/) against a plain-Python computation of the same rules, and
storing, replacing, listing and comparing selections."""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, field

import pytest
from factory import add_scores, add_trajectories, new_store

from curate.cli import main
from curate.select import (
    COLUMNS,
    SelectConfig,
    audit,
    builtin_policies,
    describe,
    load_policy,
    run_policy,
    select,
    selections,
)
from curate.store import Store

POLICIES = ["first", "max_ifd", "max_nll", "median_nll", "min_ifd", "min_nll", "min_rsr", "random"]
INJECTION = "x'; DROP TABLE trajectories; --"


@dataclass
class Sample:
    dataset: str
    question_id: str
    sample_idx: int
    correct: bool = True
    parse_error: bool = False
    max_steps: bool = False
    scores: dict[str, list[float]] = field(default_factory=dict)  # run -> turn means
    text: str = "Thought: add.\nCode:\n```py\nfinal_answer(4)\n```<end_code>"
    trajectory_id: str | None = None  # None: the factory's default id
    ranks: dict[str, list[int]] = field(default_factory=dict)  # run -> turn rank sums (RSR)
    alone: dict[str, list[float]] = field(default_factory=dict)  # run -> turn means alone (IFD)

    @property
    def tid(self) -> str:
        return self.trajectory_id or f"{self.dataset}:{self.question_id}:{self.sample_idx}"

    @property
    def clean(self) -> bool:
        return self.correct and not self.parse_error and not self.max_steps

    def nll(self, run: str) -> float:
        means = self.scores[run]
        return sum(means) / len(means)

    def rsr(self, run: str) -> float | None:
        """Clipped ranks summed over NLLs summed (10 tokens a turn, as the factory stores them)."""
        if run not in self.ranks:
            return None
        return sum(self.ranks[run]) / max(math.fsum(m * 10 for m in self.scores[run]), 1e-12)

    def ifd(self, run: str) -> tuple[float, bool] | None:
        """The mean turn IFD, and whether a turn has IFD >= 1."""
        if run not in self.alone:
            return None
        turns = [math.exp(c - a) for c, a in zip(self.scores[run], self.alone[run])]
        return math.fsum(turns) / len(turns), any(x >= 1 for x in turns)


def synthetic_samples() -> tuple[list[Sample], list[tuple[str, str]]]:
    """Hand-made edge cases plus seeded random questions with frequent NLL ties."""
    s = [
        # ties: samples 1 and 2 share the lowest NLL, 3 duplicates 0 (same text, same score)
        Sample("ds", "tie", 0, scores={"r1": [2.0], "r2": [1.0]}),
        Sample("ds", "tie", 1, scores={"r1": [1.0, 1.0], "r2": [3.0]}),
        Sample("ds", "tie", 2, scores={"r1": [0.5, 1.5], "r2": [2.0]}),
        Sample("ds", "tie", 3, scores={"r1": [2.0], "r2": [0.5]}),
        Sample("ds", "tie", 4, scores={"r1": [2.0], "r2": [2.0]}),
        # one clean candidate among failures
        Sample("ds", "one", 0, correct=False, scores={"r1": [0.1]}),
        Sample("ds", "one", 1, scores={"r1": [1.5]}),
        Sample("ds", "one", 2, parse_error=True, scores={"r1": [0.2]}),
        # none clean
        Sample("ds", "none", 0, max_steps=True, scores={"r1": [1.0]}),
        Sample("ds", "none", 1, correct=False, scores={"r1": [1.0]}),
        # clean only beyond K = 2; sample 0 unclean (first with K = 1 chooses nothing)
        Sample("ds", "late", 0, correct=False, scores={"r1": [0.5]}),
        Sample("ds", "late", 1, parse_error=True, scores={"r1": [0.5]}),
        Sample("ds", "late", 2, scores={"r1": [1.0]}),
        Sample("ds", "late", 3, scores={"r1": [0.5]}),
        # clean but not scored in r1 (scored in r2 only)
        Sample("ds", "unscored", 0, scores={"r2": [1.0]}),
        # four candidates: median is the lower middle
        *[Sample("ds", "even", i, scores={"r1": [v]}) for i, v in enumerate([4.0, 1.0, 3.0, 2.0])],
        # the same question id in another data set
        Sample("other", "one", 0, scores={"r1": [0.5], "r2": [0.5]}),
        Sample("other", "one", 1, scores={"r1": [0.25], "r2": [1.5]}),
    ]
    rng = random.Random(4)
    for d in ("ds", "other"):
        for q in range(12):
            for i in range(rng.randint(0, 6)):
                # a repeat of the previous sample: the same text and the same turn scores
                if i and rng.random() < 0.2:
                    prev = s[-1]
                    s.append(
                        Sample(
                            d,
                            f"r{q:02d}",
                            i,
                            prev.correct,
                            prev.parse_error,
                            prev.max_steps,
                            {r: list(m) for r, m in prev.scores.items()},
                            prev.text,
                        )
                    )
                    continue
                scores = {
                    r: [rng.choice([0.5, 1.0, 1.5, 2.0]) for _ in range(rng.randint(1, 3))]
                    for r in ("r1", "r2")
                    if rng.random() < 0.9
                }
                s.append(
                    Sample(
                        d,
                        f"r{q:02d}",
                        i,
                        rng.random() < 0.7,
                        rng.random() < 0.1,
                        rng.random() < 0.1,
                        scores,
                        f"Thought: {rng.random()}\nCode:\n```py\nfinal_answer(1)\n```<end_code>",
                    )
                )
    for x in s:  # run r1 ranks tokens and has the alone pass, r2 neither; identical texts get identical numbers
        if "r1" in x.scores:
            x.ranks["r1"] = [int(10 * m) + 1 for m in x.scores["r1"]]
            x.alone["r1"] = [m + (-0.5, 0.0, 0.5)[hashlib.md5(x.text.encode()).digest()[0] % 3] for m in x.scores["r1"]]
    asked = sorted({(x.dataset, x.question_id) for x in s} | {("ds", "empty"), ("other", "empty")})
    return s, asked


def build(store: Store, samples: list[Sample], asked: list[tuple[str, str]]) -> None:
    add_trajectories(
        store,
        [
            {
                "dataset": x.dataset,
                "question_id": x.question_id,
                "sample_idx": x.sample_idx,
                "correct": x.correct,
                "parse_error": x.parse_error,
                "max_steps": x.max_steps,
                "messages": [("system", "sys"), ("user", f"New task:\n{x.question_id}?"), ("assistant", x.text)],
            }
            for x in samples
        ],
    )
    for d, q in asked:
        store.con.execute(
            "INSERT INTO questions VALUES ($d, $q, 'Q?', 'A', 1, NULL) ON CONFLICT DO NOTHING", {"d": d, "q": q}
        )
    for run in ("r1", "r2"):
        add_scores(
            store,
            run,
            {x.tid: x.scores[run] for x in samples if run in x.scores},
            rank_sums={x.tid: x.ranks[run] for x in samples if run in x.ranks},
            alone_means={x.tid: x.alone[run] for x in samples if run in x.alone},
        )


def reference(samples, asked, policy, run, dataset=None, k=None, seed=0, pool_all=False) -> list[tuple]:
    """The DESIGN rules, written out in plain Python (`pool_all`: every scored sample a candidate,
    as `curate compare --pool all` runs policies)."""
    rows = []
    for d, q in asked:
        if dataset is not None and d != dataset:
            continue
        mine = [x for x in samples if (x.dataset, x.question_id) == (d, q)]
        pool = [x for x in mine if (x.clean or pool_all) and (k is None or x.sample_idx < k) and run in x.scores]
        if not pool:
            if not mine:
                why = "no trajectory"
            elif not any(x.clean for x in mine):
                why = "no clean trajectory"
            elif not any(x.clean and (k is None or x.sample_idx < k) for x in mine):
                why = "no clean trajectory with sample_idx < k"
            else:
                why = "clean trajectories not scored in this run"
            rows.append((d, q, None, None, None, 0, why))
            continue
        by_nll = sorted(pool, key=lambda x: (x.nll(run), x.sample_idx))
        if policy in SCORED:
            rows.append(scored_reference(pool, by_nll, policy, run))
            continue
        pick, why = {
            "min_nll": (by_nll[0], "lowest NLL"),
            "max_nll": (min(pool, key=lambda x: (-x.nll(run), x.sample_idx)), "highest NLL"),
            "median_nll": (by_nll[(len(pool) + 1) // 2 - 1], "median NLL"),
            "first": (min(pool, key=lambda x: x.sample_idx), "first clean sample"),
            "random": (
                min(pool, key=lambda x: (hashlib.md5(f"{x.tid}:{seed}".encode()).hexdigest(), x.sample_idx)),
                "random draw",
            ),
        }[policy]
        rows.append((d, q, pick.tid, pick.nll(run), by_nll.index(pick) + 1, len(pool), why))
    return rows


SCORED = ("min_rsr", "max_ifd", "min_ifd")


def scored_reference(pool: list[Sample], by_nll: list[Sample], policy: str, run: str) -> tuple:
    """min_rsr, max_ifd, min_ifd as DESIGN states them; a question's row (dataset, question_id, ...)."""
    d, q = pool[0].dataset, pool[0].question_id
    if policy == "min_rsr":
        have = [x for x in pool if x.rsr(run) is not None]
        if not have:
            return (
                d,
                q,
                None,
                None,
                None,
                len(pool),
                "clean candidates have no RSR in this run (its backend gave no token ranks)",
            )
        pick, why = min(have, key=lambda x: (x.rsr(run), x.sample_idx)), "lowest RSR"
    else:
        have = [x for x in pool if x.ifd(run) is not None]
        if not have:
            return (
                d,
                q,
                None,
                None,
                None,
                len(pool),
                "clean candidates have no IFD in this run (score it with curate score --ifd)",
            )
        sign = -1 if policy == "max_ifd" else 1
        pick = min(have, key=lambda x: (x.ifd(run)[1], sign * x.ifd(run)[0], x.sample_idx))
        why = ("highest IFD" if sign < 0 else "lowest IFD") + (
            "; every candidate has a turn with IFD >= 1" if pick.ifd(run)[1] else ""
        )
    return (d, q, pick.tid, pick.nll(run), by_nll.index(pick) + 1, len(pool), why)


@pytest.fixture(scope="module")
def synthetic():
    samples, asked = synthetic_samples()
    store = new_store()
    build(store, samples, asked)
    yield store, samples, asked
    store.close()


def as_rows(frame) -> list[tuple]:
    return [tuple(r) for r in frame.select(COLUMNS).iter_rows()]


def test_builtin_policies_are_listed() -> None:
    assert builtin_policies() == POLICIES


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    ("run", "dataset", "k", "seed"),
    [
        ("r1", None, None, 0),
        ("r1", "ds", None, 0),
        ("r1", None, 2, 7),
        ("r2", "other", 1, 0),
        ("r2", None, 3, 3),
    ],
)
def test_policy_matches_reference(synthetic, policy, run, dataset, k, seed) -> None:
    store, samples, asked = synthetic
    got = as_rows(run_policy(store.con, policy, run, dataset, k, seed))
    want = reference(samples, asked, policy, run, dataset, k, seed)
    assert [r[:3] + r[4:] for r in got] == [r[:3] + r[4:] for r in want]
    assert [r[3] for r in got] == pytest.approx([r[3] for r in want])


def test_synthetic_store_has_every_case(synthetic) -> None:
    _store, samples, asked = synthetic
    rows = reference(samples, asked, "min_nll", "r1", k=2)
    reasons = {r[6] for r in rows}
    assert reasons == {
        "lowest NLL",
        "no trajectory",
        "no clean trajectory",
        "no clean trajectory with sample_idx < k",
        "clean trajectories not scored in this run",
    }
    assert {r[5] for r in rows} >= {0, 1, 2}
    tie = dict(((r[0], r[1]), r) for r in reference(samples, asked, "min_nll", "r1"))[("ds", "tie")]
    assert tie[2:6] == ("ds:tie:1", 1.0, 1, 5)  # ties with sample 2 at NLL 1.0: the earlier sample wins


def test_median_of_an_even_count_is_the_lower_middle(synthetic) -> None:
    store = synthetic[0]
    rows = run_policy(store.con, "median_nll", "r1", "ds").filter(question_id="even")
    assert rows.select("trajectory_id", "nll", "rank", "candidates").row(0) == ("ds:even:3", 2.0, 2, 4)


def test_first_with_k1_is_vanilla_distillation(synthetic) -> None:
    store = synthetic[0]
    rows = {r["question_id"]: r for r in run_policy(store.con, "first", "r1", "ds", k=1).iter_rows(named=True)}
    assert rows["tie"]["trajectory_id"] == "ds:tie:0"
    assert (rows["late"]["trajectory_id"], rows["late"]["reason"]) == (None, "no clean trajectory with sample_idx < k")
    later = run_policy(store.con, "first", "r1", "ds").filter(question_id="late")
    assert later["trajectory_id"].item() == "ds:late:2"


def test_random_depends_on_the_seed_only(synthetic) -> None:
    store = synthetic[0]
    a, b = (run_policy(store.con, "random", "r1", seed=s)["trajectory_id"].to_list() for s in (0, 1))
    assert a != b
    assert a == run_policy(store.con, "random", "r1", seed=0)["trajectory_id"].to_list()


def test_min_nll_golden_rows() -> None:
    store = new_store()
    ids = add_trajectories(
        store,
        [
            {"question_id": "a"},
            {"question_id": "a"},
            {"question_id": "a", "correct": False},
            {"question_id": "b", "max_steps": True},
        ],
    )
    add_scores(store, "run", {ids[0]: [1.0, 2.0], ids[1]: [0.5, 1.0, 1.5], ids[2]: [0.1], ids[3]: [0.1]})
    got = run_policy(store.con, "min_nll", "run")
    assert got.columns == list(COLUMNS)
    assert got.rows() == [
        ("ds", "a", "ds:a:1", 1.0, 1, 2, "lowest NLL"),
        ("ds", "b", None, None, None, 0, "no clean trajectory"),
    ]


def test_scored_policies_meet_every_case(synthetic) -> None:
    _store, samples, asked = synthetic
    reasons = {p: {r[6] for r in reference(samples, asked, p, "r1")} for p in SCORED}
    assert {"highest IFD", "highest IFD; every candidate has a turn with IFD >= 1"} <= reasons["max_ifd"]
    assert {"lowest IFD", "lowest IFD; every candidate has a turn with IFD >= 1"} <= reasons["min_ifd"]
    assert "lowest RSR" in reasons["min_rsr"]
    without = {r[6] for p in SCORED for r in reference(samples, asked, p, "r2")}
    assert {
        "clean candidates have no RSR in this run (its backend gave no token ranks)",
        "clean candidates have no IFD in this run (score it with curate score --ifd)",
    } <= without
    # ties: candidates of one question with equal RSR, and with equal IFD, exist (the earlier sample wins)
    pools: dict = {}
    for x in samples:
        if x.clean and "r1" in x.ranks:
            pools.setdefault((x.dataset, x.question_id), []).append(x)
    assert any(len({x.rsr("r1") for x in p}) < len(p) for p in pools.values())
    assert any(len({x.ifd("r1") for x in p}) < len(p) for p in pools.values())


def test_rsr_and_ifd_views_golden_rows() -> None:
    store = new_store()
    a, b, c = add_trajectories(store, [{"question_id": "a"}, {"question_id": "a"}, {"question_id": "a"}])
    add_scores(
        store,
        "run",
        {a: [1.0, 2.0], b: [0.5], c: [1.0]},
        rank_sums={a: [30, 50]},  # c has no ranks: the backend gave none
        alone_means={a: [1.5, 2.0], b: [0.25]},  # c has no alone pass
    )
    rsr = store.sql("SELECT trajectory_id, rsr, rank_sum, nll_sum, tokens, turns FROM trajectory_rsr ORDER BY 1")
    assert rsr.rows() == [(a, 80 / 30, 80, 30.0, 20, 2), (b, None, None, 5.0, 10, 1), (c, None, None, 10.0, 10, 1)]
    turns = store.sql("SELECT trajectory_id, turn, ifd, flagged FROM turn_ifd ORDER BY 1, 2").rows()
    assert turns == [(a, 0, math.exp(-0.5), False), (a, 1, 1.0, True), (b, 0, math.exp(0.25), True)]
    ifd = store.sql("SELECT trajectory_id, ifd, turns, flagged_turns FROM trajectory_ifd ORDER BY 1").rows()
    assert ifd == [(a, (math.exp(-0.5) + 1.0) / 2, 2, 1), (b, math.exp(0.25), 1, 1)]


def test_scored_policies_golden_rows() -> None:
    store = new_store()
    ids = add_trajectories(store, [{"question_id": "a"}] * 4 + [{"question_id": "b"}] * 2)
    add_scores(
        store,
        "run",
        {t: [1.0] for t in ids},
        rank_sums=dict(zip(ids, [[20], [10], [10], [40], [5], [5]])),
        alone_means=dict(zip(ids, [[1.5], [0.5], [2.0], [2.0], [0.5], [1.0]])),
    )
    rows = {p: run_policy(store.con, p, "run").rows() for p in SCORED}
    # a: samples 1 and 2 tie on RSR, the earlier wins; b: both have a turn with IFD >= 1
    assert rows["min_rsr"] == [
        ("ds", "a", "ds:a:1", 1.0, 2, 4, "lowest RSR"),
        ("ds", "b", "ds:b:0", 1.0, 1, 2, "lowest RSR"),
    ]
    assert rows["max_ifd"] == [
        ("ds", "a", "ds:a:0", 1.0, 1, 4, "highest IFD"),  # exp(-0.5) against sample 1's IFD >= 1 and 2, 3's exp(-1)
        ("ds", "b", "ds:b:0", 1.0, 1, 2, "highest IFD; every candidate has a turn with IFD >= 1"),
    ]
    assert rows["min_ifd"] == [
        ("ds", "a", "ds:a:2", 1.0, 3, 4, "lowest IFD"),  # exp(-1) twice: the earlier sample
        ("ds", "b", "ds:b:1", 1.0, 2, 2, "lowest IFD; every candidate has a turn with IFD >= 1"),
    ]


def test_parameters_are_data_not_sql(synthetic) -> None:
    store = synthetic[0]
    before = store.sql("SELECT count(*) AS n FROM trajectories").item()
    assert run_policy(store.con, "min_nll", "r1", dataset=INJECTION).is_empty()
    hostile_run = "r1'; DROP TABLE turn_scores; --"
    rows = run_policy(store.con, "min_nll", hostile_run, dataset="ds")
    assert set(rows["reason"]) <= {"clean trajectories not scored in this run", "no clean trajectory", "no trajectory"}
    with pytest.raises(ValueError, match='no questions to select from in data set "x\'; DROP TABLE trajectories; --"'):
        select(store, SelectConfig(run="r1", dataset=INJECTION))
    assert store.sql("SELECT count(*) AS n FROM trajectories").item() == before
    assert store.sql("SELECT count(*) AS n FROM turn_scores").item() > 0


def test_select_stores_and_replaces_atomically(tmp_path) -> None:
    samples, asked = synthetic_samples()
    store = Store(tmp_path / "s.duckdb")
    build(store, samples, asked)
    first = select(store, SelectConfig(run="r1", name="mine"))
    assert first == type(first)("mine", False)
    stored = store.sql("SELECT * EXCLUDE (selection_id) FROM selection_rows WHERE selection_id = 'mine' ORDER BY ALL")
    assert sorted(stored.rows(), key=str) == sorted(reference(samples, asked, "min_nll", "r1"), key=str)
    again = select(store, SelectConfig(run="r1", k=1, name="mine"))
    assert again.replaced
    assert store.sql("SELECT k FROM selections").rows() == [(1,)]
    assert store.sql("SELECT count(*) AS n FROM selection_rows").item() == len(asked)
    bad = tmp_path / "unclean.sql"
    bad.write_text(
        "SELECT t.dataset, t.question_id, min(t.trajectory_id) AS trajectory_id, 1.0 AS nll, 1 AS rank,"
        " 1 AS candidates, 'any' AS reason FROM trajectories t WHERE NOT t.clean GROUP BY ALL"
    )
    with pytest.raises(
        ValueError,
        match=r"fail sql/checks/ \(first: selection_row_not_clean: ds/late ds:late:0: "
        r"chosen trajectory is not clean\); nothing stored",
    ):
        select(store, SelectConfig(policy=str(bad), run="r1", name="mine"))
    assert store.sql("SELECT k, policy FROM selections").rows() == [(1, "min_nll")]
    assert store.sql("SELECT count(*) AS n FROM selection_rows").item() == len(asked)
    store.close()


def test_default_names_and_params(synthetic) -> None:
    store = synthetic[0]
    assert select(store, SelectConfig(run="r1")).selection_id == "min_nll:r1"
    assert (
        select(store, SelectConfig(policy="random", run="r2", dataset="ds", k=3, seed=7)).selection_id
        == "random:r2:ds:k3:seed7"
    )
    row = selections(store.con, "random:r2:ds:k3:seed7").row(0, named=True)
    assert (row["policy"], row["run_id"], row["student"], row["dataset"], row["k"], row["seed"]) == (
        "random",
        "r2",
        "tiny",
        "ds",
        3,
        7,
    )
    params = json.loads(store.sql("SELECT params FROM selections WHERE policy = 'min_nll'").item())
    assert params["seed"] is None and params["policy_file"] == "sql/policies/min_nll.sql"
    assert params["policy_sha256"] == load_policy("min_nll").sha256
    assert audit(store.con).is_empty()
    # --student picks that student's latest finished run (r1 and r2 finished together: the later id)
    assert select(store, SelectConfig(student="tiny", name="by-student")).selection_id == "by-student"
    assert store.sql("SELECT run_id FROM selections WHERE selection_id = 'by-student'").item() == "r2"
    with pytest.raises(ValueError, match="several .or no. scoring runs in this store"):
        select(store, SelectConfig())


def test_user_policy_from_a_path(synthetic, tmp_path) -> None:
    store, samples, asked = synthetic
    path = tmp_path / "shortest.sql"
    path.write_text(
        "-- the clean candidate with the fewest assistant characters\n"
        "WITH c AS (SELECT c.*, t.assistant_chars FROM question_candidates($run_id, $dataset, $k) c"
        " LEFT JOIN trajectories t USING (trajectory_id))\n"
        "SELECT dataset, question_id, trajectory_id, nll, nll_rank AS rank, candidates,"
        " coalesce(no_candidate, 'shortest') AS reason FROM c"
        " QUALIFY row_number() OVER (PARTITION BY dataset, question_id ORDER BY assistant_chars, sample_idx) = 1;\n"
    )
    got = select(store, SelectConfig(policy=str(path), run="r1", dataset="other"))
    assert got.selection_id == "shortest:r1:other"
    chosen = store.sql(
        "SELECT trajectory_id FROM selection_rows WHERE selection_id = $s AND trajectory_id IS NOT NULL",
        s=got.selection_id,
    )["trajectory_id"].to_list()
    pools = {}
    for x in samples:
        if x.dataset == "other" and x.clean and "r1" in x.scores:
            pools.setdefault(x.question_id, []).append(x)
    want = sorted(min(pool, key=lambda x: (len(x.text), x.sample_idx)).tid for pool in pools.values())
    assert sorted(chosen) == want
    assert json.loads(store.sql("SELECT params FROM selections WHERE policy = 'shortest'").item())[
        "policy_file"
    ] == str(path.resolve())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT 1; DROP TABLE trajectories", "must be exactly one SELECT statement, found 2"),
        ("DELETE FROM trajectories", "must be exactly one SELECT statement, found 1"),
        ("SELECT $run_id AS dataset, $limit AS x", r"unknown parameter\(s\) \$limit; policies take \$run_id"),
        (
            "SELECT 'ds' AS dataset, 'q' AS question_id",
            "output lacks column.* trajectory_id, nll, rank, candidates, reason",
        ),
        (
            "SELECT 'ds' AS dataset, 'q' AS question_id, NULL AS trajectory_id, NULL AS nll, NULL AS rank, 0 AS candidates,"
            " 'x' AS reason FROM range(2)",
            "1 question.* more than one row .first: ds/q.",
        ),
        ("SELECT nope FROM trajectories", 'Referenced column "nope" not found'),
    ],
)
def test_bad_user_policies_are_refused(synthetic, tmp_path, text, message) -> None:
    path = tmp_path / "bad.sql"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        run_policy(synthetic[0].con, str(path), "r1")
    assert str(path.resolve()) in str(error.value)


def test_unknown_policy_names_the_choices() -> None:
    with pytest.raises(
        ValueError, match="unknown policy 'smallest': built-in policies are first, max_ifd, max_nll, median_nll"
    ):
        load_policy("smallest")
    with pytest.raises(FileNotFoundError, match="policy file nowhere/p.sql: no such file"):
        load_policy("nowhere/p.sql")


def test_describe_counts_reasons(synthetic) -> None:
    store, samples, asked = synthetic
    select(store, SelectConfig(run="r1", k=2, name="described"))
    lines = describe(store.con, "described")
    ref = reference(samples, asked, "min_nll", "r1", k=2)
    chosen = sum(1 for r in ref if r[2])
    assert lines[0] == "selection described: policy min_nll, run r1 (student tiny), data set all, K 2"
    assert lines[1] == f"  questions {len(ref)}, selected {chosen}, no clean candidate {len(ref) - chosen}"
    unscored = sum(1 for x in samples if x.clean and x.sample_idx < 2 and "r1" not in x.scores)
    assert lines[-1] == (
        f"  warning: {unscored} clean trajectories within K have no score in run r1 and were not candidates"
    )
    assert any(line.strip().endswith("no clean trajectory with sample_idx < k") for line in lines)


def test_cli_select_selections_compare(tmp_path, capsys) -> None:
    samples, asked = synthetic_samples()
    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        build(store, samples, asked)
    assert main(["select", "--db", str(db), "--policy", "min_nll", "--run", "r1", "--dataset", "ds"]) == 0
    out = capsys.readouterr().out
    n = sum(1 for d, _q in asked if d == "ds")
    assert out.startswith(
        f"selection min_nll:r1:ds: policy min_nll, run r1 (student tiny), data set ds, K all\n  questions {n}, "
    )
    assert out.endswith(f"stored in {db}\n")
    assert main(["select", "--db", str(db), "--policy", "first", "--run", "r1", "--dataset", "ds", "--k", "1"]) == 0
    capsys.readouterr()
    assert main(["selections", "--db", str(db)]) == 0
    listed = capsys.readouterr().out
    assert "min_nll:r1:ds" in listed and "first:r1:ds:k1" in listed
    assert main(["selections", "--db", str(db), "--format", "json"]) == 0
    listed = {s["selection_id"]: s for s in json.loads(capsys.readouterr().out)}
    first = reference(samples, asked, "first", "r1", "ds", k=1)
    assert (listed["first:r1:ds:k1"]["questions"], listed["first:r1:ds:k1"]["selected"]) == (
        len(first),
        sum(1 for r in first if r[2]),
    )
    assert main(["compare", "min_nll:r1:ds", "first:r1:ds:k1", "--db", str(db), "--format", "json"]) == 0
    low = reference(samples, asked, "min_nll", "r1", "ds")
    same = sum(1 for a, b in zip(low, first) if a[2] and a[2] == b[2])
    compared = json.loads(capsys.readouterr().out)
    assert [r["same as first:r1:ds:k1"] for r in compared] == [same, sum(1 for r in first if r[2])]
    assert [r["same as min_nll:r1:ds"] for r in compared] == [sum(1 for r in low if r[2]), same]
    assert main(["select", "--db", str(db), "--policy", "best"]) == 2
    assert capsys.readouterr().err.startswith("curate select: error: unknown policy 'best'")
    missing = tmp_path / "typo.duckdb"
    assert main(["select", "--db", str(missing), "--policy", "min_nll"]) == 2
    assert (
        capsys.readouterr().err == f"curate select: error: {missing}: no store here (create one with `curate ingest`)\n"
    )
    assert not missing.exists()
