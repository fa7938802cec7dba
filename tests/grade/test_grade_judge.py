"""The LLM judge: its prompt, one batched temperature-0 call, verdict parsing, unparseable verdicts.
The model is a scripted backend (a test double for the model only); a real SmolLM2 call is below."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from curate.agent.backends import Completion, GenRequest
from curate.grade import Grade, grade_answers
from curate.grade.judge import prompt_template, read_verdict


class ScriptedJudge:
    """A judge model that answers from a script, in order, and records what it was asked."""

    name = "scripted"

    def __init__(self, replies: Sequence[str], model_id: str = "scripted-judge", finish: str = "stop") -> None:
        self.replies = list(replies)
        self.model_id = model_id
        self.finish = finish
        self.calls: list[list[GenRequest]] = []

    def generate(self, requests: Sequence[GenRequest]) -> list[Completion]:
        self.calls.append(list(requests))
        out, self.replies = self.replies[: len(requests)], self.replies[len(requests) :]
        return [Completion(text, len(text.split()), self.finish) for text in out]

    def close(self) -> None:
        pass


def test_judge_prompt_holds_question_aliases_and_answer_and_runs_greedy_in_one_batch() -> None:
    judge = ScriptedJudge(
        [
            "The answer names the same city.\nVerdict: CORRECT",
            "It names Lyon, the reference is Paris.\nVerdict: INCORRECT",
        ]
    )
    grades = grade_answers(
        "judge",
        ["Capital of France?", "Capital of France?"],
        ['["Paris", "Paris, France"]', "Paris"],
        ["It is Paris.", "Lyon"],
        judge=judge,
    )
    assert grades == [
        Grade(True, 1.0, "The answer names the same city.", "judge:scripted-judge"),
        Grade(False, 0.0, "It names Lyon, the reference is Paris.", "judge:scripted-judge"),
    ]
    (batch,) = judge.calls
    assert [(r.temperature, len(r.messages), r.messages[0]["role"]) for r in batch] == [(0.0, 1, "user")] * 2
    prompt = batch[0].messages[0]["content"]
    assert prompt == prompt_template().substitute(
        question="Capital of France?", gold="Paris / Paris, France", answer="It is Paris."
    )
    assert (
        "Question: Capital of France?\nReference answer: Paris / Paris, France\nAssistant's answer: It is Paris."
        in prompt
    )
    assert "aliases" in prompt and "key fact" in prompt  # phrasing is fine; missing the point is not
    assert prompt.rstrip().endswith("Verdict: CORRECT\nVerdict: INCORRECT")


def test_answers_with_dollars_and_braces_reach_the_prompt_unchanged() -> None:
    judge = ScriptedJudge(["Verdict: correct"])
    (grade,) = grade_answers("judge", ["Cost in $?"], ["$5"], ["\\boxed{5} dollars, ${x}"], judge=judge)
    assert grade.correct
    assert "Assistant's answer: \\boxed{5} dollars, ${x}\n" in judge.calls[0][0].messages[0]["content"]


@pytest.mark.parametrize(
    ("text", "verdict", "explanation"),
    [
        ("Same person.\nVerdict: CORRECT", True, "Same person."),
        ("Different year.\n\n**Verdict:** incorrect", False, "Different year."),
        ("verdict: Correct", True, "verdict: Correct"),
        # the last verdict line counts (a judge that first quotes the format, then decides)
        (
            "Options are Verdict: CORRECT or INCORRECT.\nIt misses the date.\nVerdict: INCORRECT",
            False,
            "Options are Verdict: CORRECT or INCORRECT.\nIt misses the date.",
        ),
    ],
)
def test_verdict_line_is_parsed(text, verdict, explanation) -> None:
    assert read_verdict(Completion(text, 5, "stop")) == (verdict, explanation)


def test_an_unparseable_verdict_is_not_correct_with_the_reason() -> None:
    judge = ScriptedJudge(["I think the answer is probably right", "The answer is"], finish="length")
    grades = grade_answers("judge", ["q1", "q2"], ["a", "b"], ["a", "b"], judge=judge)
    assert grades[0] == Grade(
        False,
        None,
        "judge: no 'Verdict: CORRECT|INCORRECT' line (cut at the token limit); it wrote: "
        "'I think the answer is probably right'",
        "judge:scripted-judge",
    )
    assert grades[1].score is None and grades[1].explanation.endswith("it wrote: 'The answer is'")
    ok, why = read_verdict(Completion("Looks right to me.", 4, "stop"))
    assert ok is None and why == "judge: no 'Verdict: CORRECT|INCORRECT' line; it wrote: 'Looks right to me.'"


def test_missing_answers_never_reach_the_judge() -> None:
    judge = ScriptedJudge(["Verdict: CORRECT"])
    grades = grade_answers("judge", ["q1", "q2", "q3"], ["a", None, "c"], ["a", "b", None], judge=judge)
    assert [g.explanation for g in grades] == ["Verdict: CORRECT", "no gold answer", "no final answer"]
    assert len(judge.calls[0]) == 1


def test_a_real_smollm2_judge_through_curate_grade(tmp_path, capsys) -> None:
    from factory import add_trajectories

    from curate.cli import main
    from curate.store import Store

    with Store(tmp_path / "s.duckdb") as store:
        add_trajectories(
            store,
            [
                dict(
                    dataset="qa",
                    question_id="q1",
                    question_text="What is the capital of France?",
                    gold_answer="Paris",
                    generated_answer="Paris",
                )
            ],
        )
    argv = [
        "grade",
        "--db",
        str(tmp_path / "s.duckdb"),
        "--grader",
        "judge",
        "--judge-model",
        "smollm2",
        "--no-progress",
    ]
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("qa: judge:smollm2 graded 1, kept 0 earlier grades")
    with Store(tmp_path / "s.duckdb", read_only=True) as store:
        row = store.sql("SELECT grader, correct, score, explanation FROM grades").rows()
    # SmolLM2-135M answers the question instead of writing the verdict line: a model that small is no
    # judge, and its reply is kept as the reason the grade is not correct.
    assert row == [
        (
            "judge:smollm2",
            False,
            None,
            "judge: no 'Verdict: CORRECT|INCORRECT' line; it wrote: "
            "'The answer to the question \"What is the capital of France?\" is indeed Paris.'",
        )
    ]


def test_curate_grade_with_a_judge_behind_an_openai_compatible_server(tmp_path, capsys, api) -> None:
    from factory import add_trajectories

    from curate.cli import main
    from curate.store import Store

    def verdict(path: str, body: dict) -> dict:
        said = body["messages"][-1]["content"].rsplit("Assistant's answer: ", 1)[1].split("\n")[0]
        text = f"It says {said}.\nVerdict: {'CORRECT' if said == 'Paris' else 'INCORRECT'}"
        return {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    api.answer = verdict
    with Store(tmp_path / "s.duckdb") as store:
        add_trajectories(
            store,
            [dict(dataset="qa", question_id="q1", gold_answer="Paris", generated_answer=a) for a in ("Paris", "Lyon")],
        )
    assert (
        main(
            [
                "grade",
                "--db",
                str(tmp_path / "s.duckdb"),
                "--grader",
                "judge",
                "--judge-model",
                "served-judge",
                "--judge-backend",
                "openai",
                "--judge-endpoint",
                api.url,
                "--no-progress",
            ]
        )
        == 0
    )
    assert "qa: judge:served-judge graded 2" in capsys.readouterr().out
    with Store(tmp_path / "s.duckdb", read_only=True) as store:
        assert store.sql(
            "SELECT t.generated_answer, g.grader, g.correct, g.explanation FROM grades g JOIN "
            "trajectories t USING (trajectory_id) ORDER BY 1"
        ).rows() == [
            ("Lyon", "judge:served-judge", False, "It says Lyon."),
            ("Paris", "judge:served-judge", True, "It says Paris."),
        ]
    assert (
        sorted((p, b["model"], b["temperature"], len(b["messages"])) for p, b in api.calls)
        == [("/v1/chat/completions", "served-judge", 0.0, 1)] * 2
    )
