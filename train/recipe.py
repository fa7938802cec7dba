"""The training recipe in torchtune's shape: `setup` builds, `train` runs one visible loop, `cleanup` saves.

    curate train --data EXPORT --student PATH --out DIR [--loss smartad] [--max-steps N]
    torchrun --nproc_per_node 2 --no-python curate train ...     # DDP, same code

An explicit loop rather than `transformers.Trainer`: the loss divides by the step's Σw (or, for
SAD, by per-group token counts of the step) known before the first micro-batch, the log is per
segment, and resume must restore the data position exactly. With Trainer that is a custom
compute_loss, sampler and callback around hidden machinery; here it is one loop to read.

Outputs in OUT: adapter_config.json + adapter_model.safetensors (peft), the tokenizer,
train_config.json (resolved config, data provenance, encoding stats, the system prompt the data
opens with, which `curate eval` shows the student; versions), data_card.md
(the export's card), train_log.jsonl (one object per optimiser step), loss_curves.png, and
checkpoints/ (adapter, optimiser, scheduler, RNG and step; re-running the same command resumes
from the latest one).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from curate.models import check_student, resolve_student

from ..render.segments import SEGMENTS
from .config import TrainConfig
from .data import Encoded, collate, encode, epoch_batches, load_export, system_prompt
from .loss import LossSpec, SegmentObjective, parse_loss, segment_counts


def distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the process group torchrun/accelerate describe in the env."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def _all_reduce(x: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        dist.all_reduce(x)
    return x


def _precision(cfg: TrainConfig, device: torch.device) -> str:
    if cfg.precision != "auto":
        return cfg.precision
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def load_model(cfg: TrainConfig, path: Path, device: torch.device, dtype: torch.dtype) -> Any:
    """The student with fresh LoRA adapters on cfg.targets (seeded), in train mode."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model.config.use_cache = False
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    torch.manual_seed(cfg.seed)
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.targets,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora).to(device).train()


def load_teacher(
    path: str, tokenizer: Any, example: list[dict[str, str]], device: torch.device, dtype: torch.dtype
) -> Any:
    """A frozen teacher whose tokenizer renders the data to the student's token ids."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from curate.render import render

    if render(AutoTokenizer.from_pretrained(path), example).input_ids != render(tokenizer, example).input_ids:
        raise ValueError(f"--teacher {path}: its tokenizer renders the data differently from the student's")
    teacher = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    return teacher.requires_grad_(False)


def _schedule(cfg: TrainConfig, total: int):
    warm = round(cfg.warmup_ratio * total)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    return factor


def save_checkpoint(out: Path, step: int, model: Any, optimizer: Any, scheduler: Any, rank: int, world: int) -> None:
    """checkpoints/step-N: adapter, optimiser, scheduler, step (rank 0) and each rank's RNG."""
    folder = out / "checkpoints" / f"step-{step}"
    if rank == 0:
        model.save_pretrained(folder)
        torch.save(
            {"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
            folder / "state.pt",
        )
    if world > 1:
        dist.barrier()
    rng = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    torch.save(rng, folder / f"rng-{rank}.pt")
    if world > 1:
        dist.barrier()
    if rank == 0:
        # The pointer moves only once the folder is complete, so a kill never leaves a torn one.
        (out / "checkpoints" / "latest.tmp").write_text(folder.name)
        os.replace(out / "checkpoints" / "latest.tmp", out / "checkpoints" / "latest")
        for old in (out / "checkpoints").glob("step-*"):
            if old.name != folder.name:
                shutil.rmtree(old)


def load_checkpoint(out: Path, model: Any, optimizer: Any, scheduler: Any, rank: int) -> int:
    """Restore the latest checkpoint in place; the step it was taken at (0: none)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    pointer = out / "checkpoints" / "latest"
    if not pointer.is_file():
        return 0
    folder = out / "checkpoints" / pointer.read_text().strip()
    set_peft_model_state_dict(model, load_file(folder / "adapter_model.safetensors"))
    state = torch.load(folder / "state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng = torch.load(folder / f"rng-{rank}.pt", weights_only=False)
    random.setstate(rng["python"])
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    return state["step"]


def _provenance(cfg: TrainConfig, card: Path | None, rows: Any, stats: dict) -> dict:
    header = None
    if card is not None:
        import yaml

        text = card.read_text(encoding="utf-8")
        if text.startswith("---"):
            header = yaml.safe_load(text.split("---", 2)[1])
    return {
        "path": str(Path(cfg.data).resolve()),
        "fingerprint": getattr(rows, "_fingerprint", None),
        "card": "data_card.md" if card is not None else None,
        "card_header": header,
        "encode": stats,
        **system_prompt(rows),
    }


def no_decision_warning(step: int, profiles: list[str], loss: str) -> str:
    """The line printed when a step holds no action or final token, so its weighting does nothing."""
    return (
        f"warning: step {step}: no action or final token under marker profile {', '.join(profiles)}; "
        f"--loss {loss} trains every token of this step as reason. If the runs use other markers "
        "(MINT: <execute>/<solution>), pass --profile or re-export so rows carry their `profile` column"
    )


def _prepare_out(out: Path, record: dict) -> None:
    """Write train_config.json, or check that a run already there has the same config and data."""
    path = out / "train_config.json"
    if path.is_file():
        before = json.loads(path.read_text())
        changed = sorted(k for k in record["config"] if before["config"].get(k) != record["config"][k])
        changed += ["world_size"] if before["resolved"]["world_size"] != record["resolved"]["world_size"] else []
        # Same path, other rows: resuming would mix two data sets in one run.
        changed += ["data"] if before["data"]["encode"] != record["data"]["encode"] else []
        if changed:
            raise ValueError(f"{out} holds a run with a different config ({', '.join(changed)}); choose another --out")
        return
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")


def read_log(log: Path) -> list[dict]:
    """The entries of train_log.jsonl; a bad line is named, except a torn last one.

    A kill while a line is written leaves it without its newline; its step comes after the last
    checkpoint (checkpoints are saved after the line), so resuming replays it and the torn line goes.
    """
    text = log.read_text() if log.is_file() else ""
    lines = text.splitlines()
    if lines and not text.endswith("\n"):
        lines.pop()
    entries = []
    for number, line in enumerate(lines, 1):
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{log}: line {number}: not a JSON log entry ({error.msg}); delete that line, or train into a new --out"
            ) from None
    return entries


def _keep_log(log: Path, upto: int) -> None:
    # Steps after the checkpoint are replayed on resume; their old lines go.
    log.write_text("".join(json.dumps(entry) + "\n" for entry in read_log(log) if entry["step"] <= upto))


def plot_losses(log: Path, png: Path) -> None:
    """Loss curves from train_log.jsonl: the total and one panel per segment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_log(log)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.5), sharex=True)
    for ax, key in zip(axes, ["loss", *(f"loss_{s}" for s in SEGMENTS)]):
        points = [(r["step"], r[key]) for r in rows if r[key] is not None]
        ax.plot(*zip(*points) if points else ([], []), marker="." if len(points) < 50 else None)
        ax.set_title(key)
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


@dataclass(frozen=True)
class Run:
    """What `setup` builds for the loop: data, student, objective, optimiser, the step plan and
    the step the run goes on from."""

    out: Path
    tokenizer: Any
    data: Encoded
    lengths: list[int]  # tokens of each example
    model: Any  # the student with its LoRA adapters
    objective: SegmentObjective | DistributedDataParallel  # per-segment loss sums of a batch; DDP on several ranks
    params: list[torch.nn.Parameter]  # the LoRA weights, what the optimiser trains
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    autocast: torch.autocast
    spec: LossSpec
    rank: int
    world: int
    device: torch.device
    accum: int  # micro-batches per optimiser step on each rank
    steps_per_epoch: int
    total: int  # optimiser steps of the whole run
    start: int  # the step the latest checkpoint holds (0: a fresh run)


@dataclass(frozen=True)
class Trained:
    """Where a run wrote its outputs, the trained peft model (eval mode) and the steps done."""

    out: Path
    model: Any
    steps: int

    @property
    def log(self) -> list[dict]:
        """The entries of the run's train_log.jsonl, one per optimiser step (earlier invocations' too)."""
        return read_log(self.out / "train_log.jsonl")


def setup(cfg: TrainConfig) -> Run:
    """Check the inputs, encode the data, load the student (and teacher), build the optimiser and
    schedule, write or check train_config.json and restore the latest checkpoint."""
    from transformers import AutoTokenizer

    spec = parse_loss(cfg.loss)
    if spec.distill != (cfg.teacher is not None):
        raise ValueError("--teacher is required by --loss sad_kl and used by no other loss")
    rank, world, device = distributed()
    if device.type == "cuda":
        # cuDNN's attention builds a plan per sequence length (~0.2 s each on an H100) and no two
        # trajectories share a length; the flash backend needs none.
        torch.backends.cuda.enable_cudnn_sdp(False)
    if cfg.batch_size % (cfg.micro_batch_size * world):
        raise ValueError(
            f"--batch-size {cfg.batch_size} is not a multiple of --micro-batch-size {cfg.micro_batch_size} × {world} ranks"
        )
    accum = cfg.batch_size // (cfg.micro_batch_size * world)
    # Bad inputs fail here, before any model is built or loaded.
    rows, card = load_export(cfg.data)
    check_student(cfg.student)
    if cfg.teacher is not None and not (Path(cfg.teacher) / "config.json").is_file():
        raise FileNotFoundError(f"--teacher {cfg.teacher}: not a model folder (no config.json)")
    out, student = Path(cfg.out), resolve_student(cfg.student)
    tokenizer = AutoTokenizer.from_pretrained(student)
    data = encode(rows, tokenizer, cfg.profile, cfg.max_length, cfg.truncation, cfg.data)
    lengths = [len(e.input_ids) for e in data.examples]

    precision = _precision(cfg, device)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    model = load_model(cfg, student, device, dtype)
    teacher = None
    if cfg.teacher is not None:
        example = [dict(m) for m in rows[data.rows[0]]["messages"]]
        teacher = load_teacher(cfg.teacher, tokenizer, example, device, dtype)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(epoch_batches(lengths, cfg.micro_batch_size, cfg.seed, 0, world)) / world / accum)
    total = cfg.max_steps or cfg.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(cfg, total))

    record = {
        "config": asdict(cfg),
        "resolved": {
            "student_path": str(student.resolve()),
            "loss": asdict(spec),
            "world_size": world,
            "grad_accum": accum,
            "steps_per_epoch": steps_per_epoch,
            "total_steps": total,
            "precision": precision,
            "device": device.type,
        },
        "data": _provenance(cfg, card, rows, data.stats),
        "versions": {m.__name__: m.__version__ for m in map(__import__, ("torch", "transformers", "peft", "datasets"))},
    }
    if rank == 0:
        _prepare_out(out, record)
        if card is not None:
            shutil.copyfile(card, out / "data_card.md")
    if world > 1:
        dist.barrier()
    start = load_checkpoint(out, model, optimizer, scheduler, rank)
    if start == 0:
        torch.manual_seed(cfg.seed + rank)  # dropout streams differ per rank, reproducibly
        random.seed(cfg.seed + rank)
    if rank == 0:
        _keep_log(out / "train_log.jsonl", start)

    objective: SegmentObjective | DistributedDataParallel = SegmentObjective(model, cfg.chunk_size, teacher)
    if world > 1:
        objective = DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    return Run(
        out=out,
        tokenizer=tokenizer,
        data=data,
        lengths=lengths,
        model=model,
        objective=objective,
        params=params,
        optimizer=optimizer,
        scheduler=scheduler,
        autocast=autocast,
        spec=spec,
        rank=rank,
        world=world,
        device=device,
        accum=accum,
        steps_per_epoch=steps_per_epoch,
        total=total,
        start=start,
    )


def train(cfg: TrainConfig, stop_after: int | None = None) -> Trained:
    """Train LoRA adapters with the segment-weighted loss: `setup`, the loop, `cleanup`.

    `stop_after` N ends the run after step N as a kill would (only what the last checkpoint
    holds survives); calling again with the same config resumes from that checkpoint.
    """
    from tqdm.auto import tqdm

    run = setup(cfg)
    log = run.out / "train_log.jsonl"
    step = run.start
    bar = tqdm(total=run.total, initial=step, unit="step", desc="train", disable=run.rank != 0)
    epoch_seen, mine = -1, []
    loop_start = time.perf_counter()
    while step < run.total and (stop_after is None or step < stop_after):
        epoch, index = divmod(step, run.steps_per_epoch)
        if epoch != epoch_seen:  # this rank's micro-batches of the epoch
            order = epoch_batches(run.lengths, cfg.micro_batch_size, cfg.seed, epoch, run.world)
            epoch_seen, mine = epoch, order[run.rank :: run.world]
        started = time.perf_counter()
        step_rows = mine[index * run.accum : (index + 1) * run.accum]
        batches = [collate([run.data.examples[i] for i in b], run.tokenizer.pad_token_id or 0) for b in step_rows]
        # Σw of the whole step (all micro-batches, all ranks) is known from the labels up front, so
        # each micro-batch's Σw·ℓ is divided by it as it goes and the gradients add up to the step's loss.
        counts = _all_reduce(
            torch.stack([segment_counts(b["segments"]) for b in batches]).sum(0).to(run.device), run.world
        )
        if run.rank == 0 and run.spec.weighs_segments and not counts[1:].any():
            profiles = sorted({run.data.profiles[i] for b in step_rows for i in b})
            tqdm.write(no_decision_warning(step + 1, profiles, run.spec.name), file=sys.stderr)
        coef = run.spec.coefficients(counts)
        sums = torch.zeros(len(SEGMENTS), device=run.device)
        # DDP all-reduces the gradients in the backward pass of the step's last micro-batch only.
        no_sync = run.objective.no_sync if isinstance(run.objective, DistributedDataParallel) else nullcontext
        for j, batch in enumerate(batches):
            with nullcontext() if j == len(batches) - 1 else no_sync():
                with run.autocast:
                    part = run.objective(**{k: v.to(run.device) if v is not None else None for k, v in batch.items()})
                # DDP averages gradients over ranks; the coefficients already hold the global Σw.
                ((coef * part).sum() * run.world).backward()
            sums += part.detach()
        grad_norm = torch.nn.utils.clip_grad_norm_(run.params, cfg.max_grad_norm)
        lr = run.optimizer.param_groups[0]["lr"]
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
        step += 1

        tokens = sum(run.lengths[i] for b in step_rows for i in b)
        tokens = int(_all_reduce(torch.tensor(tokens, device=run.device), run.world))
        sums = _all_reduce(sums, run.world)
        seconds = time.perf_counter() - started
        entry = {
            "step": step,
            "epoch": epoch,
            "loss": run.spec.combine(sums, counts).item(),
            **{f"loss_{s}": (sums[k] / counts[k]).item() if counts[k] else None for k, s in enumerate(SEGMENTS)},
            **{f"n_{s}": int(counts[k]) for k, s in enumerate(SEGMENTS)},
            "tokens": tokens,
            "tokens_per_s": tokens / seconds,
            "lr": lr,
            "grad_norm": float(grad_norm),
            "elapsed_s": time.perf_counter() - loop_start,  # since this process's loop began
        }
        if run.rank == 0:
            with log.open("a") as f:
                f.write(json.dumps(entry) + "\n")
            bar.set_postfix(loss=f"{entry['loss']:.4f}", tok_s=f"{entry['tokens_per_s']:.0f}")
            bar.update()
        if step % cfg.save_every == 0 or step == run.total:
            save_checkpoint(run.out, step, run.model, run.optimizer, run.scheduler, run.rank, run.world)
    bar.close()
    return cleanup(run, step)


def cleanup(run: Run, step: int) -> Trained:
    """A finished run writes its adapter, tokenizer and loss curves; every run leaves the process group."""
    if run.rank == 0 and step == run.total:
        run.model.save_pretrained(run.out)
        run.tokenizer.save_pretrained(run.out)
        plot_losses(run.out / "train_log.jsonl", run.out / "loss_curves.png")
    if run.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return Trained(run.out, run.model.eval(), step)


@dataclass(frozen=True)
class DemoTraining:
    """The first and last train_log.jsonl entries of `demo`'s run."""

    first: dict
    last: dict

    def lines(self) -> list[str]:
        """One line per step: the loss, each segment's loss, the throughput."""
        lines = []
        for row in (self.first, self.last):
            parts = ", ".join(
                f"{s} {row[f'loss_{s}']:.3f}" if row[f"loss_{s}"] is not None else f"{s} -" for s in SEGMENTS
            )
            lines.append(
                f"train step {row['step']:>3}: loss {row['loss']:.3f} ({parts}), {row['tokens_per_s']:.0f} tokens/s"
            )
        return lines


def demo(data: str, out: str, steps: int = 8, student: str = "tiny") -> DemoTraining:
    """Train the tiny student a few smartad steps on an export; its first and last step's
    per-segment losses (a higher lr than the paper's, so a few steps visibly move them)."""
    cfg = TrainConfig(
        data=data,
        student=student,
        out=out,
        loss="smartad",
        max_steps=steps,
        lr=5e-3,
        lora_r=8,
        lora_alpha=16,
        max_length=4096,
        save_every=steps,
    )
    log = train(cfg).log
    return DemoTraining(log[0], log[-1])
