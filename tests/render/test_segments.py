"""Loss segments on hand-written trajectories: the exact text each label covers, per profile."""

from __future__ import annotations

import itertools

from curate.render import render
from curate.render.markers import PROFILES
from curate.render.segments import SEGMENTS, UNSUPERVISED, label_segments

HEAD = "<|im_start|>assistant\n"


def chat(*messages: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": role, "content": content} for role, content in messages]


def runs(tokenizer, chat_, profile: str) -> list[tuple[str, str]]:
    """(segment, decoded text) of each run of equally labelled tokens; '-' is unsupervised."""
    labelled = label_segments(tokenizer, chat_, PROFILES[profile])
    return [
        ("-" if seg == UNSUPERVISED else SEGMENTS[seg], tokenizer.decode([i for i, _ in group]))
        for seg, group in itertools.groupby(zip(labelled.input_ids, labelled.segments), key=lambda x: x[1])
    ]


SMOLAGENTS = chat(
    ("system", "You solve tasks with code."),
    ("user", "New task:\nWhat is 2+2?"),
    ("assistant", "Thought: first look. Code:\n```py\nx = search('é')\n```<end_code>"),
    ("user", "Call id: call_1\nObservation:\nCode:\n```py\nnot mine\n```<end_code>"),
    ("assistant", "Thought: retry 🙂\nCode:\n```py\ny = 1"),
    ("user", "Observation:\nok"),
    (
        "assistant",
        "Thought: two blocks.\nCode:\n```py\na = 1\n```<end_code>\nCode:\n```py\nfinal_answer(4)\n```<end_code>\nDone.",
    ),
)


def test_smolagents_segments(tiny_tokenizer) -> None:
    # " Code" straddles the marker's start; the observation's fences and markers stay unlabelled;
    # the unclosed `Code:` is an action to its turn's end; the last of two blocks is final;
    # end-of-turn tokens follow their turn's last content token; unicode stays whole.
    assert runs(tiny_tokenizer, SMOLAGENTS, "smolagents") == [
        (
            "-",
            "<|im_start|>system\nYou solve tasks with code.<|im_end|>\n<|im_start|>user\nNew task:\nWhat is 2+2?<|im_end|>\n"
            + HEAD,
        ),
        ("reason", "Thought: first look."),
        ("action", " Code:\n```py\nx = search('é')\n```<end_code><|im_end|>\n"),
        (
            "-",
            "<|im_start|>user\nCall id: call_1\nObservation:\nCode:\n```py\nnot mine\n```<end_code><|im_end|>\n" + HEAD,
        ),
        ("reason", "Thought: retry 🙂\n"),
        ("action", "Code:\n```py\ny = 1<|im_end|>\n"),
        ("-", "<|im_start|>user\nObservation:\nok<|im_end|>\n" + HEAD),
        ("reason", "Thought: two blocks.\n"),
        ("action", "Code:\n```py\na = 1\n```<end_code>"),
        ("reason", "\n"),
        ("final", "Code:\n```py\nfinal_answer(4)\n```<end_code>"),
        ("reason", "\nDone.<|im_end|>\n"),
    ]


def test_markers_split_across_tokens_count_whole(tiny_tokenizer) -> None:
    def pieces(s: str) -> list[str]:
        offsets = tiny_tokenizer(s, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        return [s[a:b] for a, b in offsets]

    # The premises of the test above: markers that no single token holds.
    assert pieces("a. Code:") == ["a", ".", " Code", ":"]
    assert pieces("```<end_code>") == ["```<", "end", "_", "code", ">"]
    assert pieces("x <execute>") == ["x", " <", "execute", ">"]


def test_mint_actions_answers_and_final(tiny_tokenizer) -> None:
    # A rejected <solution> is an action; the last span (here the answer) is final.
    messages = chat(
        ("user", "Task:\nWhat is 3*3?"),
        ("assistant", "<thought> compute </thought>\n<execute>print(3*3)</execute>"),
        ("user", "Observation:\n9\n<execute>not mine</execute>"),
        ("assistant", "<solution> 8 </solution>"),
        ("user", "Observation: wrong"),
        ("assistant", "<thought> recheck </thought> <execute>print(9)</execute> <solution> 9 </solution>"),
    )
    assert runs(tiny_tokenizer, messages, "mint") == [
        ("-", "<|im_start|>user\nTask:\nWhat is 3*3?<|im_end|>\n" + HEAD),
        ("reason", "<thought> compute </thought>\n"),
        ("action", "<execute>print(3*3)</execute><|im_end|>\n"),
        ("-", "<|im_start|>user\nObservation:\n9\n<execute>not mine</execute><|im_end|>\n" + HEAD),
        ("action", "<solution> 8 </solution><|im_end|>\n"),
        ("-", "<|im_start|>user\nObservation: wrong<|im_end|>\n" + HEAD),
        ("reason", "<thought> recheck </thought>"),
        ("action", " <execute>print(9)</execute>"),
        ("final", " <solution> 9 </solution><|im_end|>\n"),
    ]


def test_mint_final_is_whichever_span_comes_last(tiny_tokenizer) -> None:
    messages = chat(("user", "Task"), ("assistant", "<solution> 1 </solution>\n<execute>print(1)</execute>"))
    assert runs(tiny_tokenizer, messages, "mint")[1:] == [
        ("action", "<solution> 1 </solution>"),
        ("reason", "\n"),
        ("final", "<execute>print(1)</execute><|im_end|>\n"),
    ]


def test_smolagents_new_code_tags(tiny_tokenizer) -> None:
    messages = chat(
        ("user", "Task"),
        ("assistant", "Thought: go.\n<code>\nx = 1\n</code>"),
        ("user", "Observation: <code>obs</code>"),
        ("assistant", "Thought: done.<code>final_answer(1)</code>"),
    )
    assert runs(tiny_tokenizer, messages, "smolagents_new") == [
        ("-", "<|im_start|>user\nTask<|im_end|>\n" + HEAD),
        ("reason", "Thought: go.\n"),
        ("action", "<code>\nx = 1\n</code><|im_end|>\n"),
        ("-", "<|im_start|>user\nObservation: <code>obs</code><|im_end|>\n" + HEAD),
        ("reason", "Thought: done."),
        ("final", "<code>final_answer(1)</code><|im_end|>\n"),
    ]


def test_no_markers_is_all_reason_and_mask_is_renders(tiny_tokenizer) -> None:
    messages = chat(("user", "Hi"), ("assistant", "Hello 🙂 no code here"))
    assert runs(tiny_tokenizer, messages, "smolagents")[1:] == [("reason", "Hello 🙂 no code here<|im_end|>\n")]
    # Supervised tokens are exactly the one rendering's mask, for every profile.
    for name in PROFILES:
        labelled = label_segments(tiny_tokenizer, SMOLAGENTS, PROFILES[name])
        mask = [t >= 0 for t in render(tiny_tokenizer, SMOLAGENTS).turn]
        assert [s != UNSUPERVISED for s in labelled.segments] == mask
