"""One training loop for every network in the project: denoisers, and anything else with a loss_fn.

    stats = train(model, loss_fn, images, labels, TrainConfig(steps=2000, batch_size=256, lr=1e-3),
                  device=device, ckpt_path="runs/x/denoiser.pt")

`loss_fn(model, x, y, generator) -> scalar` holds everything specific to an objective (noise, t,
targets: see objectives.py); this file holds what every run shares: AdamW with linear warm-up and a
half-cycle cosine decay (the paper's schedule, PAPER.md "Pre-training hyper-parameters"), bf16
autocast, gradient clipping, a progress bar with measured images/s, atomic checkpoints and exact
resume, and DistributedDataParallel under torchrun.

Randomness and exact resume. A step draws random numbers from three places, and all three states go
into every checkpoint, so an interrupted and resumed run ends with the very same parameters as one that
ran straight through:
  1. a data generator (batch indices, drawn *with replacement*: no epoch bookkeeping to save);
  2. a loss generator handed to loss_fn, which must use it for all its noise and t sampling;
  3. torch's global RNG (dropout inside the model).

Distributed. Under torchrun call `setup_distributed()` first. Each rank holds the whole dataset,
draws its own indices (generators seeded with seed + rank) and trains on batch_size // world_size
images; DDP averages the gradients, so one step is one step on the global batch. Rank 0 alone shows
the bar and writes checkpoints (with every rank's generator states, gathered). loss_fn must call
`model(...)` itself, since DDP synchronises gradients only through the wrapped forward.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import StopAfterStep, atomic_save, load_checkpoint, rng_state, set_rng_state
from .device import autocast

LossFn = Callable[[nn.Module, torch.Tensor, "torch.Tensor | None", torch.Generator], torch.Tensor]
_CKPT_KEYS = ("model", "optimizer", "step", "cfg", "seed", "rng", "losses", "seconds", "images_per_s")
_BOOKKEEPING = ("ckpt_every", "log_every")  # cfg fields that do not change the trained parameters
_SPEED_WARMUP = 5  # first steps of a session excluded from img/s (allocator, kernel selection)
_GLOO_DRAIN_S = 0.2  # see cleanup_distributed


@dataclass(frozen=True)
class TrainConfig:
    steps: int  # optimizer steps; the lr schedule is laid out over exactly this many
    batch_size: int  # global batch, split evenly across DDP ranks
    lr: float  # peak learning rate, reached at the end of warm-up
    warmup_frac: float = 0.05  # the paper warms up 1/4 of training; at our few-thousand-step budgets 5% suffices
    weight_decay: float = 0.0  # the paper and DiT use none; when > 0 it skips biases and norm gains (MAE)
    betas: tuple[float, float] = (0.9, 0.95)  # beta2 0.95 (MAE, ViT practice) steadies Adam at high lr
    grad_clip: float | None = 1.0  # cap the global gradient norm: cheap insurance against early spikes
    ckpt_every: int | None = None  # None: checkpoint only at the end (and on Ctrl-C)
    log_every: int = 10  # a loss read-out syncs the GPU, so record a mean every few steps, not every step

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps={self.steps} and batch_size={self.batch_size} must both be >= 1")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr} must be > 0")
        if not 0 <= self.warmup_frac < 1:
            raise ValueError(f"warmup_frac={self.warmup_frac} must be in [0, 1)")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip={self.grad_clip} must be > 0, or None for no clipping")
        if self.ckpt_every is not None and self.ckpt_every < 1:
            raise ValueError(f"ckpt_every={self.ckpt_every} must be >= 1, or None (only at the end)")
        if self.log_every < 1:
            raise ValueError(f"log_every={self.log_every} must be >= 1")


@dataclass
class TrainStats:
    steps: int  # optimizer steps completed (== cfg.steps once finished)
    seconds: float = 0.0  # wall-clock training time, summed over resumed sessions
    images_per_s: float = 0.0  # global (all ranks) throughput of the last session, after device syncs
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, mean loss since previous entry)
    resumed_from: int | None = None  # step of the checkpoint this run continued from, None if fresh


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of the update that takes the model from `step` to `step + 1` done steps.

    Linear warm-up over w = round(warmup_frac * steps) updates (lr/w, 2lr/w, ..., lr), then a
    half-cycle cosine from lr at step w to exactly 0 at step `steps`.
    """
    w = round(cfg.warmup_frac * cfg.steps)
    if step < w:
        return cfg.lr * (step + 1) / w
    progress = min(1.0, (step - w) / max(1, cfg.steps - w))
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


# -- distributed helpers --------------------------------------------------------------------------


def setup_distributed(backend: str | None = None) -> torch.device:
    """Join the torchrun process group (WORLD_SIZE > 1) and return this rank's device.

    backend None: nccl when CUDA is available (one GPU per rank, cuda:LOCAL_RANK), else gloo on CPU.
    Outside torchrun (WORLD_SIZE unset or 1) nothing is initialised and the device is cuda/mps/cpu.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        from .device import get_device

        return get_device()
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"backend={backend!r}; allowed: 'nccl', 'gloo' or None")
    device = torch.device("cpu")
    if backend == "nccl":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend, device_id=device if backend == "nccl" else None)
    return device


def cleanup_distributed() -> None:
    """Leave the process group, if there is one (call once at the end of a torchrun script).

    A gloo worker thread frees each finished collective after the caller has moved on, and freeing one
    that holds Python tensors needs the GIL. If that happens while the interpreter shuts down, the
    process aborts ("terminate called without an active exception") after its work is done. So every
    rank meets at a barrier, leaves the group, and then sleeps briefly with the GIL released, letting
    the worker finish before the interpreter exits.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        time.sleep(_GLOO_DRAIN_S)


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RuntimeError("WORLD_SIZE > 1 but torch.distributed is not initialised: call setup_distributed()")
    return 0, 1


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that wall-clock times measure computation and not launches."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _config_diff(saved: dict, cfg: TrainConfig, seed: int, world_size: int | None) -> list[str]:
    """Fields that change the trained parameters and differ between a checkpoint and this run.

    world_size None: not compared (a finished run can be loaded by any number of processes).
    """
    now = {k: v for k, v in asdict(cfg).items() if k not in _BOOKKEEPING}
    then = {k: v for k, v in saved["cfg"].items() if k not in _BOOKKEEPING}
    now["seed"], then["seed"] = seed, saved["seed"]
    if world_size is not None:  # each rank resumes its own generators, so the count must match
        now["world_size"], then["world_size"] = world_size, len(saved["rng"])
    return [f"{k}: {then.get(k)!r} (checkpoint) != {now.get(k)!r} (now)"
            for k in sorted(set(now) | set(then)) if then.get(k) != now.get(k)]


# -- the loop -------------------------------------------------------------------------------------


def train(model: nn.Module, loss_fn: LossFn, images: torch.Tensor, labels: torch.Tensor | None,
          cfg: TrainConfig, *, device: torch.device | str, ckpt_path: str | os.PathLike | None = None,
          seed: int = 0, desc: str = "train", progress: bool = True,
          on_step: Callable[[int, TrainStats], None] | None = None) -> TrainStats:
    """Train `model` in place for cfg.steps AdamW steps on random batches of (images, labels).

    images: (N, ...) and labels: (N,) or None, on any device (moved to `device` once).
    loss_fn(model, x, y, generator) -> scalar; it must draw all its randomness from `generator`.
    ckpt_path: resume from it when it holds a valid checkpoint of this configuration (ValueError
      naming the fields when it holds another), return at once when it is complete, start over with a
      warning when it is corrupted; written every cfg.ckpt_every steps, at the end and on Ctrl-C.
    on_step(step, stats): called on every rank after each step (step = steps done); may raise.
    """
    rank, world_size = _world()
    device = torch.device(device)
    if cfg.batch_size % world_size:
        raise ValueError(f"batch_size={cfg.batch_size} is not divisible by the world size {world_size}")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    batch = cfg.batch_size // world_size  # per rank

    # 1. The whole dataset moves to the device once; a batch is then one indexing op, no DataLoader.
    model.to(device)
    images = images.to(device)
    labels = None if labels is None else labels.to(device)

    # 2. AdamW. Weight decay only on matrices (biases and norm gains are exempt, as in MAE); the fused
    #    CUDA kernel updates all parameters in one launch, foreach does it in a few on other devices.
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, betas=cfg.betas,
                                  fused=fused or None, foreach=None if fused else True)

    # 3. Two seeded generators on the device: batch indices, and the loss's noise and t.
    data_gen = torch.Generator(device).manual_seed(seed + rank)
    loss_gen = torch.Generator(device).manual_seed(seed + rank + 2**32)  # a separate stream

    # 4. Resume, or return a finished run as it is.
    stats = TrainStats(steps=0)
    ckpt = load_checkpoint(ckpt_path, _CKPT_KEYS) if ckpt_path is not None else None
    if ckpt is not None:
        complete = ckpt["step"] >= cfg.steps
        diff = _config_diff(ckpt, cfg, seed, None if complete else world_size)
        if diff:
            raise ValueError(f"checkpoint {ckpt_path} belongs to another run: {'; '.join(diff)}. "
                             "Use the same settings, or another ckpt_path to start a new run")
        model.load_state_dict(ckpt["model"])
        stats = TrainStats(steps=ckpt["step"], seconds=ckpt["seconds"], images_per_s=ckpt["images_per_s"],
                           losses=[tuple(e) for e in ckpt["losses"]], resumed_from=ckpt["step"])
        if complete:
            if rank == 0:
                print(f"{desc}: {ckpt_path} is complete ({stats.steps} steps); nothing to train")
            return stats
        optimizer.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["rng"][rank], data_gen, loss_gen, device)
        if rank == 0:
            print(f"{desc}: resuming from step {stats.steps} ({ckpt_path})")

    # 5. DDP wraps the model after loading (its constructor broadcasts rank 0's weights anyway).
    net = model
    if world_size > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if fused else None)

    start = step = stats.steps
    seconds_before, t_begin = stats.seconds, time.perf_counter()

    def save() -> float:
        """Checkpoint the current step (a collective under DDP: every rank calls it); returns seconds."""
        t0 = time.perf_counter()
        rng = [rng_state(data_gen, loss_gen, device)]
        if world_size > 1:  # each rank's generators, so that every rank resumes exactly
            rng = [None] * world_size
            dist.all_gather_object(rng, rng_state(data_gen, loss_gen, device))
        stats.seconds = seconds_before + time.perf_counter() - t_begin
        if rank == 0:
            atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                         "cfg": asdict(cfg), "seed": seed, "rng": rng, "losses": stats.losses,
                         "seconds": stats.seconds, "images_per_s": stats.images_per_s}, ckpt_path)
        return time.perf_counter() - t0

    # 6. The loop. Speed is measured between device syncs, after _SPEED_WARMUP steps, and without the
    #    time spent in checkpoints and on_step (`other`).
    was_training = model.training
    model.train()
    bar = tqdm(total=cfg.steps, initial=start, desc=desc, disable=not progress or rank != 0, dynamic_ncols=True)
    loss_sum, n_sum, t_log, t_speed, other = torch.zeros((), device=device), 0, t_begin, None, 0.0
    in_step = False
    with StopAfterStep(active=world_size == 1) as stop:
        try:
            while step < cfg.steps:
                in_step = True  # from here until the update is done, a checkpoint would not be exact
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step, cfg)
                idx = torch.randint(0, images.shape[0], (batch,), generator=data_gen, device=device)  # (B,)
                x, y = images[idx], None if labels is None else labels[idx]
                with autocast(device):  # bf16 matmuls where the device supports them
                    loss = loss_fn(net, x, y, loss_gen)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # under DDP this also averages the gradients across ranks
                if cfg.grad_clip is not None:
                    nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                optimizer.step()
                step = stats.steps = step + 1
                in_step = False
                loss_sum += loss.detach().float()
                n_sum += 1

                if step - start == _SPEED_WARMUP:
                    _sync(device)
                    t_speed, other = time.perf_counter(), 0.0
                if step % cfg.log_every == 0 or step == cfg.steps:
                    if world_size > 1:
                        dist.all_reduce(loss_sum)  # sum over ranks (gloo has no AVG) ...
                        loss_sum /= world_size  # ... then the mean
                    mean = loss_sum.item() / n_sum  # .item() waits for the device
                    if not math.isfinite(mean):
                        raise FloatingPointError(f"{desc}: loss is {mean} at step {step}; lower cfg.lr?")
                    now = time.perf_counter()
                    stats.losses.append((step, mean))
                    bar.set_postfix({"loss": f"{mean:.4f}", "img/s": f"{n_sum * cfg.batch_size / (now - t_log):.0f}"})
                    loss_sum.zero_()
                    n_sum, t_log = 0, now
                bar.update(1)
                if cfg.ckpt_every and step % cfg.ckpt_every == 0 and step < cfg.steps and ckpt_path:
                    other += save()
                if on_step is not None:
                    t0 = time.perf_counter()
                    on_step(step, stats)
                    other += time.perf_counter() - t0
                if stop.requested:  # Ctrl-C arrived during the step that just finished
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            # Single process only: a collective in an interrupt handler could hang under DDP.
            bar.close()
            if ckpt_path and world_size == 1 and not in_step:
                save()
                print(f"{desc}: interrupted; step {step} saved to {ckpt_path}")
            elif ckpt_path and rank == 0:
                print(f"{desc}: interrupted at step {step}; a rerun resumes from the last checkpoint")
            raise
        finally:
            bar.close()
            model.train(was_training)

    # 7. Throughput of this session, global over ranks.
    _sync(device)
    t_end, timed = time.perf_counter(), step - start - _SPEED_WARMUP
    if t_speed is not None and timed > 0:
        stats.images_per_s = timed * cfg.batch_size / max(1e-9, t_end - t_speed - other)
    elif step > start:
        stats.images_per_s = (step - start) * cfg.batch_size / max(1e-9, t_end - t_begin)
    stats.seconds = seconds_before + t_end - t_begin
    if ckpt_path:
        save()
    return stats
