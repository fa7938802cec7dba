"""Tertile analyses (sql/analysis/): buckets by hand on a tiny store, every statistic against an
independent Polars computation on a synthetic store, both rules, with and without --by model."""

from __future__ import annotations

import math
import random
import re
from fractions import Fraction

import polars as pl
import pytest
from factory import add_scores, add_trajectories, new_store
from polars.testing import assert_frame_equal

from curate import analysis
from curate.analysis import AnalysisConfig
from curate.cli import main

# The hand-built store: question q10 has 10 samples with tied NLLs, q2 two, q1 one.
# sample_idx -> (NLL turn means, correct, teacher)
HAND = {
    "q10": [
        ([2], True, "A"),
        ([1], False, "A"),
        ([1], False, "A"),
        ([5], True, "A"),
        ([1], False, "A"),
        ([3], True, "B"),
        ([2], True, "B"),
        ([5, 7], True, "B"),
        ([4], False, "B"),
        ([5], False, "B"),
    ],
    "q2": [([1], True, "A"), ([0.5], False, "A")],
    "q1": [([1], True, "B")],
}


def hand_store(path=":memory:"):
    store = new_store(path)
    rows, scores = [], []
    for qid, samples in HAND.items():
        for idx, (means, correct, teacher) in enumerate(samples):
            rows.append(
                {
                    "dataset": "hand",
                    "question_id": qid,
                    "sample_idx": idx,
                    "correct": correct,
                    "teacher_model": teacher,
                    "tool_calls": idx % 3,
                    "assistant_chars": 100 + 10 * idx,
                }
            )
            scores.append(means)
    ids = add_trajectories(store, rows)
    add_scores(store, "run", dict(zip(ids, scores)))
    return store


def members(store, rule: str, by_model: bool = False) -> dict[tuple[str, str, str], str]:
    """(scope, teacher_model, bucket) -> the bucket's trajectories as 'question:sample', in NLL order."""
    frame = analysis.buckets(store.con, AnalysisConfig("run", rule=rule, by_model=by_model))
    out: dict[tuple[str, str, str], list[str]] = {}
    for row in frame.sort("scope", "teacher_model", "nll", "sample_idx", "trajectory_id").iter_rows(named=True):
        key = (row["scope"], row["teacher_model"], row["bucket"])
        out.setdefault(key, []).append(f"{row['question_id']}:{row['sample_idx']}")
    return {k: " ".join(v) for k, v in out.items()}


def test_hand_buckets_quantile_rule():
    """Global pool sorted: q2:1 (0.5), then NLL 1 x5 (q1:0, q2:0 at sample 0; q10:1, q10:2, q10:4), ...
    t1 = 5th value = 1 and t2 = 9th value = 3: every tie at 1 goes to EASY (6 / 3 / 4).
    q10 per question: t1 = 4th value = 2, t2 = 7th = 4; q2: t1 = t2 = 0.5 -> EASY, HARD."""
    assert members(hand_store(), "quantile") == {
        ("global", "(all)", "EASY"): "q2:1 q1:0 q2:0 q10:1 q10:2 q10:4",
        ("global", "(all)", "MEDIUM"): "q10:0 q10:6 q10:5",
        ("global", "(all)", "HARD"): "q10:8 q10:3 q10:9 q10:7",
        ("per_question", "(all)", "EASY"): "q2:1 q1:0 q10:1 q10:2 q10:4 q10:0 q10:6",
        ("per_question", "(all)", "MEDIUM"): "q10:5 q10:8",
        ("per_question", "(all)", "HARD"): "q2:0 q10:3 q10:9 q10:7",
    }


def test_hand_buckets_rank_rule():
    """Equal counts (ntile): 13 -> 5/4/4, 10 -> 4/3/3, 2 -> E/M, 1 -> E; ties split by sample_idx,
    then trajectory_id (q1:0 before q2:0), so the tie at NLL 1 straddles EASY/MEDIUM globally."""
    assert members(hand_store(), "rank") == {
        ("global", "(all)", "EASY"): "q2:1 q1:0 q2:0 q10:1 q10:2",
        ("global", "(all)", "MEDIUM"): "q10:4 q10:0 q10:6 q10:5",
        ("global", "(all)", "HARD"): "q10:8 q10:3 q10:9 q10:7",
        ("per_question", "(all)", "EASY"): "q2:1 q1:0 q10:1 q10:2 q10:4 q10:0",
        ("per_question", "(all)", "MEDIUM"): "q2:0 q10:6 q10:5 q10:8",
        ("per_question", "(all)", "HARD"): "q10:3 q10:9 q10:7",
    }


def test_hand_buckets_by_model():
    """Within teacher A, q10 has NLLs 1,1,1,2,5: quantile t1 = t2 = 1 leaves MEDIUM empty."""
    got = members(hand_store(), "quantile", by_model=True)
    assert got[("per_question", "A", "EASY")] == "q2:1 q10:1 q10:2 q10:4"
    assert ("per_question", "A", "MEDIUM") not in got
    assert got[("per_question", "A", "HARD")] == "q2:0 q10:0 q10:3"
    assert got[("global", "B", "EASY")] == "q1:0 q10:6"
    stats = analysis.bucket_stats(hand_store().con, AnalysisConfig("run", by_model=True))
    empty = stats.filter(
        (pl.col("teacher_model") == "A") & (pl.col("scope") == "per_question") & (pl.col("bucket") == "MEDIUM")
    )
    assert empty.select("n_traj", "n_q", "mean_nll", "acc").row(0) == (0, 0, None, None)


def test_hand_statistics_and_spearman():
    store = hand_store()
    stats = analysis.bucket_stats(store.con, AnalysisConfig("run"))
    table = analysis.paper_table(stats, "hand")
    g = {row[0]: row[1:4] for row in table.select("metric", "G-E", "G-M", "G-H").iter_rows()}
    assert g["N_traj"] == (6, 3, 4) and g["N_q"] == (3, 1, 1)
    assert g["mean_nll"] == pytest.approx((5.5 / 6, 7 / 3, 5.0))  # q10:7 is the macro mean of 5 and 7
    assert g["acc"] == pytest.approx((100 * 2 / 6, 100.0, 50.0))
    deltas = analysis.deltas(store.con, AnalysisConfig("run"))
    acc = deltas.filter((pl.col("scope") == "global") & (pl.col("metric") == "acc"))
    assert acc["delta"].item() == pytest.approx(50 - 100 / 3)
    # Spearman with average ranks. q2: +1. q10: NLL ranks 2,2,2 | 4.5,4.5 | 6 | 7 | 8.5,8.5 | 10,
    # correct ranks 3 (wrong) / 8 (right): cov 30, sums of squares 62.5 and 79.5.
    q10 = 30 / math.sqrt(62.5 * 79.5)
    rho = analysis.spearman(store.con, AnalysisConfig("run")).row(0, named=True)
    assert (rho["questions"], rho["mixed_q"], rho["rho_q"]) == (3, 2, 2)
    assert rho["mean_rho"] == pytest.approx((1 + q10) / 2)
    # per teacher: A has q10 (samples 0-4: rho 7.5 / sqrt(60)) and q2 (+1); B has q10 (5-9) and q1 (one sample)
    by_model = analysis.spearman(store.con, AnalysisConfig("run", by_model=True))
    assert by_model.select("teacher_model", "mixed_q", "rho_q").rows() == [("A", 2, 2), ("B", 1, 1)]
    assert by_model["mean_rho"].to_list() == pytest.approx([(7.5 / math.sqrt(60) + 1) / 2, -2.5 / math.sqrt(75)])


def test_quantile_rule_ten_distinct_values_split_4_3_3():
    """n = 10 distinct NLLs: the 1/3 quantile lies exactly on the 4th value, which is EASY."""
    store = new_store()
    values = [0.1 * k for k in (3, 1, 7, 2, 9, 4, 6, 5, 8, 10)]
    ids = add_trajectories(store, [{"question_id": "q"} for _ in values])
    add_scores(store, "run", {t: [v] for t, v in zip(ids, values)})
    frame = analysis.buckets(store.con, AnalysisConfig("run")).filter(pl.col("scope") == "per_question")
    assert frame.group_by("bucket").len().sort("bucket").rows() == [("EASY", 4), ("HARD", 3), ("MEDIUM", 3)]


@pytest.mark.parametrize(
    "rule,counts",
    [
        # linear-interpolation thresholds: HARD never smaller than MEDIUM on distinct values (the paper's
        # per-question counts, 2190 MEDIUM < 2237 HARD, have this shape; inverse-CDF quantiles would not)
        ("quantile", {2: (1, 0, 1), 3: (1, 1, 1), 4: (2, 1, 1), 5: (2, 1, 2), 7: (3, 2, 2), 8: (3, 2, 3)}),
        ("rank", {2: (1, 1, 0), 3: (1, 1, 1), 4: (2, 1, 1), 5: (2, 2, 1), 7: (3, 2, 2), 8: (3, 3, 2)}),
    ],
)
def test_per_question_counts_for_small_n(rule, counts):
    store = new_store()
    samples = {f"n{n}": n for n in counts}
    ids = add_trajectories(store, [{"question_id": q} for q, n in samples.items() for _ in range(n)])
    add_scores(store, "run", {t: [0.1 * (i + 1)] for i, t in enumerate(ids)})
    frame = analysis.buckets(store.con, AnalysisConfig("run", rule=rule)).filter(pl.col("scope") == "per_question")
    got = {
        n: tuple(
            frame.filter((pl.col("question_id") == f"n{n}") & (pl.col("bucket_idx") == b)).height for b in range(3)
        )
        for n in counts
    }
    assert got == counts


# ---------------------------------------------------------------- synthetic store vs Polars

WORDS = "the answer is x we compute sum then print result so".split()


def synthetic_store():
    """Two data sets, questions of 1-12 samples, NLLs from a coarse grid (many ties), four teachers,
    2-3 turns, a second run and unscored trajectories that must not count."""
    rng = random.Random(7)
    store = new_store()
    rows, scores, texts = [], {}, {}
    for dataset in ("alpha", "beta"):
        for q in range(14):
            qid = f"q{q}"
            question = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 20)))
            for s in range(rng.randint(1, 12)):
                period = rng.randint(2, len(WORDS))
                turns = [
                    " ".join(WORDS[(i * 7 + s) % period] for i in range(rng.randint(0, 30)))
                    for _ in range(rng.randint(1, 3))
                ]
                messages = [("system", "sys"), ("user", question)]
                for turn in turns:
                    messages += [("assistant", "\n " + turn), ("tool-response", "Observation: ok")]
                rows.append(
                    {
                        "dataset": dataset,
                        "question_id": qid,
                        "question_text": question,
                        "correct": rng.random() < 0.5,
                        "teacher_model": f"m{rng.randint(0, 3)}",
                        "messages": messages,
                        "tool_calls": rng.randint(0, 5),
                        "assistant_chars": rng.randint(10, 900),
                    }
                )
                texts[len(rows) - 1] = turns
    ids = add_trajectories(store, rows)
    for tid in ids:
        if rng.random() < 0.9:
            scores[tid] = [rng.choice([0.5, 1.0, 1.25, 2.0, 3.0]) for _ in range(rng.randint(1, 3))]
    add_scores(store, "run", scores, tokens_per_turn=7)
    add_scores(store, "other", {tid: [9.0] for tid in ids[:20]})
    return store, ids, rows, scores, texts


@pytest.fixture(scope="module")
def synthetic():
    store, ids, rows, scores, texts = synthetic_store()
    analysis.refresh_repetition(store.con)
    return store, reference_pool(ids, rows, scores, texts)


def repetition(turns: list[str]) -> float | None:
    words = [w for turn in turns for w in re.findall(r"\S+", turn.lower())]
    grams = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
    return 1 - len(set(grams)) / len(grams) if grams else None


def reference_pool(ids, rows, scores, texts) -> pl.DataFrame:
    """The scored trajectories of run 'run', computed from the inputs, not from the store."""
    samples: dict[tuple[str, str], int] = {}
    records = []
    for i, (tid, row) in enumerate(zip(ids, rows)):
        key = (row["dataset"], row["question_id"])
        samples[key] = samples.get(key, -1) + 1
        if tid not in scores:
            continue
        records.append(
            {
                "dataset": row["dataset"],
                "model": row["teacher_model"],
                "question_id": row["question_id"],
                "trajectory_id": tid,
                "sample_idx": samples[key],
                "nll": sum(scores[tid]) / len(scores[tid]),
                "tokens": 7.0 * len(scores[tid]),
                "correct": row["correct"],
                "assistant_chars": row["assistant_chars"],
                "tool_calls": row["tool_calls"],
                "q_words": len(row["question_text"].split()),
                "repetition": repetition(texts[i]),
            }
        )
    return pl.DataFrame(records)


def interpolated(values: list[float], q: Fraction) -> Fraction:
    """The linear-interpolation quantile in exact arithmetic."""
    xs = sorted(Fraction(v) for v in values)
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    return xs[lo] if lo == pos else xs[lo] + (pos - lo) * (xs[lo + 1] - xs[lo])


def reference_buckets(pool: pl.DataFrame, rule: str, by_model: bool) -> pl.DataFrame:
    group = pl.col("model") if by_model else pl.lit("(all)")
    pool = pool.with_columns(group.alias("teacher_model"))
    parts = []
    for scope, keys in (
        ("global", ["dataset", "teacher_model"]),
        ("per_question", ["dataset", "teacher_model", "question_id"]),
    ):
        ordered = pool.sort("nll", "sample_idx", "trajectory_id").with_columns(
            pl.int_range(pl.len()).over(keys).alias("pos"), pl.len().over(keys).alias("n")
        )
        if rule == "rank":
            bucketed = ordered.with_columns(((3 * pl.col("pos")) // pl.col("n")).alias("bucket_idx"))
        else:
            cuts = {}
            for key, frame in ordered.group_by(keys):
                values = frame["nll"].to_list()
                cuts[key] = (interpolated(values, Fraction(1, 3)), interpolated(values, Fraction(2, 3)))
            bucket = [
                0 if Fraction(v) <= cuts[k][0] else 1 if Fraction(v) <= cuts[k][1] else 2
                for k, v in zip(ordered.select(keys).iter_rows(), ordered["nll"])
            ]
            bucketed = ordered.with_columns(pl.Series("bucket_idx", bucket))
        parts.append(bucketed.with_columns(pl.lit(scope).alias("scope")))
    return pl.concat(parts)


def reference_stats(pool: pl.DataFrame, rule: str, by_model: bool) -> pl.DataFrame:
    bucketed = reference_buckets(pool, rule, by_model)
    stats = bucketed.group_by("dataset", "teacher_model", "scope", "bucket_idx").agg(
        pl.len().alias("n_traj"),
        pl.col("question_id").n_unique().alias("n_q"),
        pl.col("nll").mean().alias("mean_nll"),
        pl.col("assistant_chars").mean().alias("traj_chars"),
        pl.col("tool_calls").mean().alias("tool_calls"),
        (100 * pl.col("correct").mean()).alias("acc"),
        pl.col("q_words").mean().alias("q_words"),
        pl.col("tokens").mean().alias("tokens"),
        pl.col("repetition").mean().alias("repetition"),
    )
    grid = (
        bucketed.select("dataset", "teacher_model", "scope")
        .unique()
        .join(pl.DataFrame({"bucket_idx": [0, 1, 2]}), how="cross")
    )
    return grid.join(stats, on=["dataset", "teacher_model", "scope", "bucket_idx"], how="left").with_columns(
        pl.col("n_traj", "n_q").fill_null(0)
    )


STAT_COLUMNS = [
    "dataset",
    "teacher_model",
    "scope",
    "bucket_idx",
    "n_traj",
    "n_q",
    "mean_nll",
    "traj_chars",
    "tool_calls",
    "acc",
    "q_words",
    "tokens",
    "repetition",
]
KEYS = ["dataset", "teacher_model", "scope", "bucket_idx"]


def normalised(frame: pl.DataFrame, columns: list[str], keys: list[str]) -> pl.DataFrame:
    return (
        frame.select(columns)
        .sort(keys)
        .with_columns(
            pl.col(c).cast(pl.Float64) for c in columns if c not in ("dataset", "teacher_model", "scope", "metric")
        )
    )


@pytest.mark.parametrize("rule", ["quantile", "rank"])
@pytest.mark.parametrize("by_model", [False, True])
def test_bucket_stats_match_polars(synthetic, rule, by_model):
    store, pool = synthetic
    got = analysis.bucket_stats(store.con, AnalysisConfig("run", rule=rule, by_model=by_model))
    want = reference_stats(pool, rule, by_model)
    assert got.height == want.height == (8 if by_model else 2) * 2 * 3
    assert_frame_equal(normalised(got, STAT_COLUMNS, KEYS), normalised(want, STAT_COLUMNS, KEYS), rel_tol=1e-9)
    # the two rules really differ on this store (ties), else the test would not tell them apart
    assert (
        analysis.bucket_stats(store.con, AnalysisConfig("run", rule="rank"))["n_traj"].to_list()
        != analysis.bucket_stats(store.con, AnalysisConfig("run", rule="quantile"))["n_traj"].to_list()
    )


@pytest.mark.parametrize("by_model", [False, True])
def test_deltas_match_polars(synthetic, by_model):
    store, pool = synthetic
    got = analysis.deltas(store.con, AnalysisConfig("run", by_model=by_model))
    stats = reference_stats(pool, "quantile", by_model)
    metrics = ["mean_nll", "traj_chars", "tool_calls", "acc", "q_words", "tokens", "repetition"]
    long = stats.unpivot(index=KEYS, on=metrics, variable_name="metric", value_name="value")
    want = (
        long.filter(pl.col("bucket_idx") == 2)
        .join(long.filter(pl.col("bucket_idx") == 0), on=["dataset", "teacher_model", "scope", "metric"], suffix="_e")
        .select("dataset", "teacher_model", "scope", "metric", (pl.col("value") - pl.col("value_e")).alias("delta"))
    )
    # UNPIVOT drops NULLs: a group whose HARD bucket is empty has no delta rows
    want = want.filter(pl.col("delta").is_not_null())
    keys = ["dataset", "teacher_model", "scope", "metric"]
    got = got.filter(pl.col("delta").is_not_null())
    assert_frame_equal(normalised(got, keys + ["delta"], keys), normalised(want, keys + ["delta"], keys), rel_tol=1e-9)


@pytest.mark.parametrize("by_model", [False, True])
def test_spearman_matches_polars(synthetic, by_model):
    store, pool = synthetic
    group = pl.col("model") if by_model else pl.lit("(all)")
    pool = pool.with_columns(group.alias("teacher_model"))
    per_question = pool.group_by("dataset", "teacher_model", "question_id").agg(
        (pl.col("correct").any() & ~pl.col("correct").all()).alias("mixed"),
        pl.corr(pl.col("nll").rank("average"), pl.col("correct").cast(pl.Int8).rank("average")).alias("rho"),
    )
    usable = pl.col("mixed") & pl.col("rho").is_not_nan() & pl.col("rho").is_not_null()
    want = per_question.group_by("dataset", "teacher_model").agg(
        pl.len().alias("questions"),
        pl.col("mixed").sum().alias("mixed_q"),
        usable.sum().alias("rho_q"),
        pl.col("rho").filter(usable).mean().alias("mean_rho"),
    )
    got = analysis.spearman(store.con, AnalysisConfig("run", by_model=by_model))
    columns = ["dataset", "teacher_model", "questions", "mixed_q", "rho_q", "mean_rho"]
    assert_frame_equal(normalised(got, columns, columns[:2]), normalised(want, columns, columns[:2]), rel_tol=1e-9)
    assert got["rho_q"].sum() > 5


def test_model_stats_match_polars(synthetic):
    store, pool = synthetic
    want = pool.group_by("dataset", pl.col("model").alias("teacher_model")).agg(
        pl.len().alias("n_traj"),
        pl.col("question_id").n_unique().alias("n_q"),
        pl.col("nll").mean().alias("mean_nll"),
        (100 * pl.col("correct").mean()).alias("acc"),
        pl.col("repetition").mean().alias("repetition"),
    )
    got = analysis.model_stats(store.con, "run")
    columns = ["dataset", "teacher_model", "n_traj", "n_q", "mean_nll", "acc", "repetition"]
    assert_frame_equal(normalised(got, columns, columns[:2]), normalised(want, columns, columns[:2]), rel_tol=1e-9)


def test_dataset_filter_and_repetition_cache(synthetic):
    store, pool = synthetic
    beta = analysis.bucket_stats(store.con, AnalysisConfig("run", dataset="beta"))
    assert beta["dataset"].unique().to_list() == ["beta"]
    both = analysis.bucket_stats(store.con, AnalysisConfig("run"))
    assert_frame_equal(beta, both.filter(pl.col("dataset") == "beta"))
    # cached once: a second refresh adds nothing
    assert analysis.refresh_repetition(store.con) == 0
    cached = store.sql("SELECT count(*) AS n FROM trajectory_repetition")["n"].item()
    assert cached == store.sql("SELECT count(*) AS n FROM trajectories")["n"].item()


def test_errors_name_the_problem():
    store = hand_store()
    with pytest.raises(ValueError, match="unknown tertile rule 'median'"):
        AnalysisConfig("run", rule="median")
    with pytest.raises(ValueError, match="scoring run 'run' has no scored trajectories in data set 'nope'"):
        analysis.bucket_stats(store.con, AnalysisConfig("run", dataset="nope"))


def test_analyze_cli(tmp_path, capsys):
    db = tmp_path / "store.duckdb"
    hand_store(db).close()
    assert main(["analyze", "--db", str(db), "--run", "run"]) == 0
    out = capsys.readouterr().out
    assert "## hand (rule: quantile)" in out
    assert "| N_traj | 6 | 3 | 4 | 7 | 2 | 4 |" in out
    assert "| acc | 33.3 | 100.0 | 50.0 |" in out
    assert main(["analyze", "--db", str(db), "--student", "tiny", "--rule", "rank", "--by", "model"]) == 0
    out = capsys.readouterr().out
    assert "Buckets per teacher model (rule: rank)" in out and "| hand | A | per_question | MEDIUM |" in out
    assert main(["analyze", "--db", str(db), "--run", "missing"]) == 2
    assert "no scoring run 'missing'" in capsys.readouterr().err
