"""A real teacher run: SmolLM2 (the `smollm2` built-in) as the agent on real HotpotQA questions, with the
real sandbox, web_search over the built-in Wikipedia corpus, a first-thought prefix, and real grading; a
few hundred tokens."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from curate.agent.generate import GenerateConfig, generate
from curate.grade import grade_answers
from curate.store import Store

MAX_NEW = 24


def test_smollm2_teacher_runs_are_stored_graded_and_reproducible(tmp_path: Path, shared_data: Path) -> None:
    questions = shared_data / "questions/qa/train/hotpotqa_1000_20250402.json"
    cfg = GenerateConfig(
        questions=str(questions),
        dataset="hotpotqa",
        model="smollm2",
        k=2,
        limit=1,
        corpus="wiki-summaries",
        max_steps=2,
        max_new_tokens=MAX_NEW,
        seed=3,
        first_thought_prefix=True,
    )
    db = tmp_path / "teacher.duckdb"
    summary = generate(db, cfg, progress=False)
    assert (summary.written, summary.counts["trajectories"]) == (2, 2)
    with Store(db, read_only=True) as store:
        runs = store.sql(
            "SELECT t.trajectory_id, t.seed, t.steps, t.generated_tokens, t.stop_reason, t.correct, "
            "t.clean, t.parse_error, t.max_steps, t.generated_answer, t.content_hash, t.teacher_model, t.first_thought, "
            "q.text AS question, q.gold_answer FROM trajectories t JOIN questions q "
            "USING (dataset, question_id) ORDER BY sample_idx"
        ).to_dicts()
        messages = store.sql(
            "SELECT trajectory_id, list(role ORDER BY position) AS roles, "
            "list(text ORDER BY position) AS texts FROM messages GROUP BY 1"
        ).rows()
        grades = dict(store.sql("SELECT trajectory_id, correct FROM grades WHERE grader = 'qa'").rows())
        prompt = store.sql("SELECT system_prompt, corpus_hash FROM generation_runs").row(0)
        [(prefix, prefix_tokens)] = store.sql("SELECT prefix, tokens FROM generation_prefixes").rows()
    transcripts = {tid: (roles, texts) for tid, roles, texts in messages}
    assert "web_search" in prompt[0] and len(prompt[1]) == 64  # the corpus's sha256
    # The first paragraph of one greedy tool-free answer starts every sample's first Thought.
    assert prefix.startswith("Thought: ") and prefix.endswith("\n\n") and "\n\n" not in prefix[:-2]
    assert 0 < prefix_tokens <= MAX_NEW and len(prefix) > len("Thought: \n\n")
    for run in runs:
        roles, texts = transcripts[run["trajectory_id"]]
        assert roles[:3] == ["system", "user", "assistant"] and texts[0] == prompt[0]
        assert texts[1].startswith(f"New task:\n{run['question']}\n")
        assert run["first_thought"] == prefix and texts[2].startswith(prefix) and len(texts[2]) > len(prefix)
        assert 1 <= run["steps"] <= 2 and run["stop_reason"] in ("final_answer", "max_steps")
        assert 0 < run["generated_tokens"] <= (run["steps"] + 1) * MAX_NEW
        assert run["parse_error"] == any("Error in code parsing" in t for t in texts)
        assert run["max_steps"] == (run["stop_reason"] == "max_steps")
        assert run["teacher_model"] == "smollm2"
        # The stored verdict is the QA grader's on the stored answer (graded again here).
        [again] = grade_answers("qa", [run["question"]], [run["gold_answer"]], [run["generated_answer"]])
        assert run["correct"] == again.correct == grades[run["trajectory_id"]]
        assert run["clean"] == (run["correct"] and not run["parse_error"] and not run["max_steps"])
    assert runs[0]["seed"] != runs[1]["seed"]
    # One run at a time instead of both in one batch: each sample's own seed regenerates its transcript
    # (the greedy first thought included).
    alone = tmp_path / "alone.duckdb"
    generate(alone, replace(cfg, slots=1), progress=False)
    with Store(alone, read_only=True) as store:
        hashes = store.sql("SELECT content_hash FROM trajectories ORDER BY sample_idx")["content_hash"].to_list()
        assert store.sql("SELECT prefix FROM generation_prefixes").item() == prefix
    assert hashes == [r["content_hash"] for r in runs]
