"""`--ray`: score, generate and eval on a local two-node Ray cluster equal the single-process
results; a worker killed with SIGKILL mid-shard still gives the exact result; a rerun is a no-op."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from curate.cli import main

ray = pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")
from ray.cluster_utils import Cluster  # noqa: E402 (once the line above has said how to get Ray)

QUESTIONS = [
    {"id": "q1", "question": "What is 6 times 7?", "answer": "42"},
    {"id": "q2", "question": "What is 2 plus 3?", "answer": "5"},
    {"id": "q3", "question": "What is 10 minus 1?", "answer": "9"},
    {"id": "q4", "question": "What is 3 squared?", "answer": "9"},
]
GENERATE = [
    "--questions",
    "{q}",
    "--model",
    "{m}",
    "--k",
    "3",
    "--tools",
    "python",
    "--max-steps",
    "2",
    "--max-new-tokens",
    "12",
    "--slots",
    "4",
    "--seed",
    "5",
    "--quiet",
]


@pytest.fixture(scope="module")
def cluster():
    """Two nodes of one CPU each on this machine; this process is the driver."""
    nodes = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": 80 * 2**20, "include_dashboard": False},
    )
    nodes.add_node(num_cpus=1, object_store_memory=80 * 2**20)
    nodes.wait_for_nodes()
    yield nodes
    ray.shutdown()
    nodes.shutdown()


@pytest.fixture(scope="module")
def questions(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("q") / "questions.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    return path


@pytest.fixture(scope="module")
def synthetic_store(tmp_path_factory) -> Path:
    """Synthetic smolagents runs of real questions (12 questions x 4), ingested."""
    folder = tmp_path_factory.mktemp("store")
    runs, db = folder / "runs.jsonl", folder / "store.duckdb"
    assert main(["synth", "--questions", "12", "--k", "4", "--out", str(runs), "--source", "math"]) == 0
    assert main(["ingest", "--db", str(db), "--dataset", "synth", "--quiet", str(runs)]) == 0
    return db


def rows(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


TURNS = "SELECT run_id, trajectory_id, turn, tokens, nll_sum, rank_sum FROM turn_scores ORDER BY 1, 2, 3"
ALONE = "SELECT run_id, sequence_hash, turn, tokens, nll_sum FROM turn_alone_scores ORDER BY 1, 2, 3"
RUNS = (
    "SELECT question_id, sample_idx, seed, content_hash, generated_answer, correct, steps, generated_tokens "
    "FROM trajectories ORDER BY 1, 2"
)


def scored_alone(store: Path, student: Path, folder: Path) -> tuple[Path, Path, list[str]]:
    """Two copies of the store, the first scored by one process; and the score options both use."""
    one, spread = folder / "one.duckdb", folder / "spread.duckdb"
    shutil.copy(store, one)
    shutil.copy(store, spread)
    args = ["--student", str(student), "--part-size", "8", "--no-progress"]
    assert main(["score", "--db", str(one), *args]) == 0
    return one, spread, args


def test_score_on_the_cluster_equals_one_process_and_a_rerun_does_nothing(
    cluster, synthetic_store, tiny_model_dir, tmp_path, capsys
) -> None:
    one, spread, args = scored_alone(synthetic_store, tiny_model_dir, tmp_path)
    capsys.readouterr()
    assert main(["score", "--db", str(spread), *args, "--ray", cluster.address, "--workers", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("scored 48 trajectories of shard 0/1 under ")
    workers = [line for line in out if line.startswith("worker ")]
    assert len(workers) == 2 and sum(int(line.split(": ")[1].split(" shards")[0]) for line in workers) == 6
    assert rows(one, TURNS) == rows(spread, TURNS) and len(rows(one, TURNS)) > 48
    assert main(["score", "--db", str(spread), *args, "--ray", cluster.address, "--workers", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("scored 0 trajectories")
    # IFD's alone pass on the cluster: the rows of one process
    assert main(["score", "--db", str(one), *args, "--ifd"]) == 0
    assert main(["score", "--db", str(spread), *args, "--ifd", "--ray", cluster.address, "--workers", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(x.startswith("IFD alone pass: ") and x.endswith("every sequence of the run has it") for x in out)
    assert rows(one, ALONE) == rows(spread, ALONE) and rows(one, ALONE)


class DyingScoreWorker:
    """A scoring worker whose first shard kills its own process (SIGKILL) halfway, as the OOM
    killer or a lost node would; the marker file makes it happen once for the whole cluster."""

    marker: Path

    def __init__(self, *args) -> None:
        from curate.score.cluster import ScoreWorker

        self.worker = ScoreWorker(*args)

    def score(self, payload):
        ids, *rest = payload  # the block's trajectory ids, then what else ScoreWorker takes with them
        if not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            self.worker.score((ids[: len(ids) // 2], *rest))  # mid-shard: half its work done
            os.kill(os.getpid(), signal.SIGKILL)
        return self.worker.score(payload)


def test_a_worker_killed_mid_shard_still_gives_the_exact_result(
    cluster, synthetic_store, tiny_model_dir, tmp_path, monkeypatch, capsys
) -> None:
    import curate.score.cluster

    one, spread, args = scored_alone(synthetic_store, tiny_model_dir, tmp_path)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    DyingScoreWorker.marker = tmp_path / "died"
    monkeypatch.setattr(curate.score.cluster, "ScoreWorker", DyingScoreWorker)
    capsys.readouterr()
    assert main(["score", "--db", str(spread), *args, "--ray", cluster.address, "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "died").exists() and ", 1 deaths" in out
    assert rows(one, TURNS) == rows(spread, TURNS)


def test_generate_and_eval_on_the_cluster_equal_one_process(cluster, questions, tiny_model_dir, tmp_path) -> None:
    generate = [a.format(q=questions, m=tiny_model_dir) for a in GENERATE]
    one, spread = tmp_path / "one.duckdb", tmp_path / "spread.duckdb"
    assert main(["generate", "--db", str(one), "--dataset", "g", *generate]) == 0
    assert main(["generate", "--db", str(spread), "--dataset", "g", *generate, "--ray", cluster.address]) == 0
    assert rows(one, RUNS) == rows(spread, RUNS) and len(rows(one, RUNS)) == 12
    # a rerun generates nothing
    assert main(["generate", "--db", str(spread), "--dataset", "g", *generate, "--ray", cluster.address]) == 0
    assert len(rows(spread, RUNS)) == 12
    evaluate = [
        "--model",
        str(tiny_model_dir),
        "--benchmarks",
        str(questions),
        "--tools",
        "python",
        "--max-steps",
        "1",
        "--max-new-tokens",
        "12",
        "--quiet",
    ]
    assert main(["eval", "--db", str(tmp_path / "e1.duckdb"), "--out", str(tmp_path / "e1"), *evaluate]) == 0
    assert (
        main(
            [
                "eval",
                "--db",
                str(tmp_path / "e2.duckdb"),
                "--out",
                str(tmp_path / "e2"),
                *evaluate,
                "--ray",
                cluster.address,
                "--workers",
                "2",
            ]
        )
        == 0
    )
    first, second = ((tmp_path / e / "predictions.jsonl").read_text().splitlines() for e in ("e1", "e2"))
    assert [json.loads(line) for line in first] == [json.loads(line) for line in second] and len(first) == 4


class FailingScoreWorker:
    """A worker whose node holds another student (what ScoreWorker's weights check refuses)."""

    def __init__(self, *args) -> None:
        raise ValueError("smollm2 on node 0a1b2c3d has weights 111111111111, the driver's 222222222222")


def test_a_worker_that_cannot_start_stops_the_job_in_one_line(
    cluster, synthetic_store, tiny_model_dir, tmp_path, monkeypatch, capsys
) -> None:
    import curate.score.cluster

    db = tmp_path / "s.duckdb"
    shutil.copy(synthetic_store, db)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    monkeypatch.setattr(curate.score.cluster, "ScoreWorker", FailingScoreWorker)
    args = ["score", "--db", str(db), "--student", str(tiny_model_dir), "--no-progress", "--ray", cluster.address]
    assert main(args) == 2
    assert capsys.readouterr().err == (
        "curate score: error: a worker could not start: ValueError: smollm2 on node 0a1b2c3d has weights "
        "111111111111, the driver's 222222222222\n"
    )


def test_a_worker_takes_what_one_node_holds(cluster) -> None:
    from curate.cluster.ray import actor_options, connect, default_workers

    connected = connect(cluster.address)
    assert default_workers(connected) == 2  # no GPU: one per node
    # one worker may not ask for the two nodes' CPUs together: no node could place it
    assert actor_options(connected, 1) == actor_options(connected, 2) == {"num_cpus": 1}


def test_an_address_where_no_cluster_answers_is_one_line(questions, tmp_path) -> None:
    # in a process of its own: this one is already connected to the test cluster
    args = [
        "generate",
        "--db",
        str(tmp_path / "s.duckdb"),
        "--questions",
        str(questions),
        "--dataset",
        "g",
        "--model",
        "tiny",
        "--k",
        "1",
        "--tools",
        "python",
        "--quiet",
        "--ray",
    ]
    for address, said in (
        (
            "127.0.0.1:1",
            "--ray 127.0.0.1:1: no Ray cluster answers there (Connection refused); start one with "
            "`ray start --head`, or use --ray local",
        ),
        ("nowhere", "--ray 'nowhere': expected local, auto, host:port or ray://host:port"),
    ):
        code = "import sys; from curate.cli import main; sys.exit(main())"
        done = subprocess.run([sys.executable, "-c", code, *args, address], capture_output=True, text=True)
        assert (done.returncode, done.stderr) == (2, f"curate generate: error: {said}\n")


def test_without_ray_the_option_says_how_to_install(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as where it is not installed
    db = tmp_path / "s.duckdb"
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps(QUESTIONS[0]) + "\n")
    assert (
        main(
            [
                "generate",
                "--db",
                str(db),
                "--questions",
                str(questions),
                "--dataset",
                "g",
                "--model",
                "tiny",
                "--k",
                "1",
                "--tools",
                "python",
                "--quiet",
                "--ray",
                "local",
            ]
        )
        == 2
    )
    assert capsys.readouterr().err == (
        "curate generate: error: --ray needs Ray, which is not installed: pip install 'curate[ray]'\n"
    )
