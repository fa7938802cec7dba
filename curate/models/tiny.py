"""Tiny offline students: a Qwen2-architecture causal LM and a small byte-level BPE tokenizer
with a ChatML chat template, built in seconds with no network (tests, demo, benchmarks)."""

from __future__ import annotations

import json
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Enough agent-log text for the BPE to learn the markers and common words; byte-level
# fallback covers everything else (unicode, emoji), so any text round-trips.
_CORPUS = [
    "New task:\nWhat is the capital of France? Answer with one word.",
    "Thought: I need to search for the answer, then return it with final_answer.",
    'Code:\n```py\nresult = web_search(query="capital of France")\nprint(result)\n```<end_code>',
    "Call id: call_1\nObservation:\nParis is the capital and largest city of France.",
    "Thought: The observation says Paris. I will return the final answer.",
    'Code:\n```py\nfinal_answer("Paris")\n```<end_code>',
    "Error: Code execution failed at line 'x = 1 / 0' due to: ZeroDivisionError",
    "Error in code parsing: the code blob is invalid. Reached max steps.",
    "<execute>\nimport math\nprint(math.sqrt(16))\n</execute> <solution> 4 </solution>",
    "<thought> Let me compute the sum of the numbers from 1 to 100. </thought>",
    "You are an expert assistant who can solve any task using code blobs.",
    "for i in range(10):\n    total += i * 2\nprint(total)\ndef solve(n): return n ** 2",
    "The quick brown fox jumps over the lazy dog 0123456789 + - * / = ( ) [ ] { } : ; , .",
    "Which magazine was started first, Arthur's Magazine or First for Women?",
    "Let x be a real number such that x^2 + 3x + 2 = 0. Find the sum of all values of x.",
]


def build_tokenizer(vocab_size: int = 1024):
    """A byte-level BPE `PreTrainedTokenizerFast` with ChatML special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS * 20, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def build_model(vocab_size: int, seed: int = 0, hidden: int = 64, layers: int = 2):
    """A randomly initialised Qwen2 causal LM small enough to run anywhere in milliseconds."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(config).eval()


TOKENIZERS = ("small", "qwen2.5")
# Written into every tiny model folder: analyses say "a tiny random model" only of these students.
MARKER = "curate_tiny_random.json"


def write_tiny_model(out: str | Path, seed: int = 0, tokenizer: str = "small") -> Path:
    """Write a tiny model + tokenizer folder that `from_pretrained(out)` loads offline.

    `tokenizer="qwen2.5"` puts the real Qwen2.5 tokenizer and vocabulary (151,936 rows) on it, so
    logits, memory and token counts are those of a Qwen2.5 student.
    """
    out = Path(out)
    if tokenizer == "small":
        tok = build_tokenizer()
        vocab_size = len(tok)
    elif tokenizer == "qwen2.5":
        from .qwen_tokenizer import QWEN25_EMBEDDING_ROWS, build_qwen25_tokenizer

        tok, vocab_size = build_qwen25_tokenizer(), QWEN25_EMBEDDING_ROWS
    else:
        raise ValueError(f"tokenizer {tokenizer!r}: expected one of {', '.join(TOKENIZERS)}")
    model = build_model(vocab_size, seed=seed)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / MARKER).write_text(
        json.dumps({"built_by": "curate.models.tiny.write_tiny_model", "seed": seed, "tokenizer": tokenizer}, indent=2)
        + "\n"
    )
    return out
