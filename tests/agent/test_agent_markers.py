"""The marker parser as the agent runtime uses it: code extraction, answers and step text per profile."""

from __future__ import annotations

from curate.render.markers import PROFILES, action_code, answer_text, spans, step_text

SMOL, NEW, MINT = PROFILES["smolagents"], PROFILES["smolagents_new"], PROFILES["mint"]


def test_smolagents_code_blocks_are_joined_as_smolagents_runs_them() -> None:
    text = "Thought: two blocks\nCode:\n```py\nx = 1\n```\nand\n```python\nprint(x)\n```<end_code>"
    assert action_code(text, SMOL) == "x = 1\n\nprint(x)"
    # smolagents 1.13 runs a fenced block wherever it sits, and an unclosed span's fence.
    assert (
        action_code("Thought: maybe ```py\nfirst()\n```\nCode:\n```py\nx = 1\n```<end_code>", SMOL)
        == "first()\n\nx = 1"
    )
    assert action_code("Thought: a\nCode:\n```python\ny = 2\n```", SMOL) == "y = 2"
    assert [s.kind for s in spans(text, SMOL)] == ["action"]


def test_bare_python_is_code_for_smolagents_but_not_for_mint() -> None:
    assert action_code("final_answer(4)", SMOL) == "final_answer(4)"
    assert action_code("final_answer(4)", MINT) is None
    assert action_code("Thought: I am not sure what to do.", SMOL) is None
    assert action_code("", SMOL) is None


def test_new_smolagents_and_mint_tags() -> None:
    assert action_code("Thought: t\n<code>\nprint(2)\n</code>", NEW) == "print(2)"
    assert action_code("<execute> import math\nprint(math.pi) </execute>", MINT) == "import math\nprint(math.pi)"
    assert action_code("<execute> a = 1 </execute> then <execute>\nprint(a)\n</execute>", MINT) == "a = 1\nprint(a)"
    # MINT runs closed blocks only, and a turn that proposes a solution is an answer.
    assert action_code("<execute>a = 1", MINT) is None and action_code("<execute>  </execute>", MINT) is None
    assert action_code("<execute>a = 1</execute> The answer is <solution> 1 </solution>", MINT) is None
    assert answer_text("<thought>done</thought> <solution> 42 </solution>", MINT) == "42"
    assert answer_text("<solution> 7", MINT) == "7"
    assert answer_text("no answer here", MINT) is None and answer_text("<solution>1</solution>", SMOL) is None


def test_step_text_cuts_foreign_stops_and_closes_a_fence() -> None:
    # Stopped at "Observation:" after the fence: cut, then smolagents' <end_code> added.
    assert (
        step_text("Thought: t\nCode:\n```py\nx=1\n```\nObservation:", SMOL)
        == "Thought: t\nCode:\n```py\nx=1\n```<end_code>"
    )
    # Stopped at the closing marker: kept as is.
    assert (
        step_text(" Thought: t\nCode:\n```py\nx=1\n```<end_code>", SMOL)
        == "Thought: t\nCode:\n```py\nx=1\n```<end_code>"
    )
    assert step_text("Thought: t\n<code>\nx=1\n</code>", NEW) == "Thought: t\n<code>\nx=1\n</code>"
    assert step_text("<execute>x</execute>", MINT) == "<execute>x</execute>"
    assert step_text("I think it is 4.\nCalling tools:", SMOL) == "I think it is 4."


def test_long_prose_is_no_code_however_deep_the_parser_goes() -> None:
    # CPython 3.11's parser gives up on ~1,500 words on one line with a MemoryError (its stack bound).
    prose = "Thought: " + "the answer depends on which of these words matters " * 300  # 15 KB
    assert action_code(prose, SMOL) is None
    assert action_code(prose * 70, SMOL) is None  # 1 MB
    assert action_code("(" * 300 + "1" + ")" * 300, SMOL) is None  # too deeply nested to parse
    assert action_code("x = 1\x00", SMOL) is None
    assert action_code("1+" * 100_000 + "1", SMOL) is None  # Python, but too deep for the interpreter to parse
    assert action_code("x = 1\n" * 20_000, SMOL) == "x = 1\n" * 20_000
