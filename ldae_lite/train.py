"""One training loop for every denoiser, and the parts that the project's other training loops share.

    stats = train(model, loss_fn, images, labels, TrainConfig(steps=2000, batch_size=256, lr=1e-3),
                  device=device, ckpt_path="runs/x/denoiser.pt")

`loss_fn(model, x, y, generator) -> scalar` holds everything specific to an objective (noise, t,
targets: see objectives.py); this file holds what every run shares: AdamW with linear warm-up and a
half-cycle cosine decay (the paper's schedule, docs/paper.md §4), bf16 autocast, gradient clipping, and
DistributedDataParallel under torchrun. The loop reads: build the optimizer, resume, then for each step
a batch, the loss, one update, a log line and maybe a checkpoint. Its parts are functions and classes
that a tokenizer's fit and the label-trained CNN's training use too: :func:`build_optimizer`,
:func:`lr_at` / :func:`set_lr`, :func:`update`, :class:`~ldae_lite.progress.Progress` (bar, mean loss,
images/s) and :class:`~ldae_lite.checkpoint.Checkpointer` (periodic atomic checkpoints, Ctrl-C and
SIGTERM handled after the current step).

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
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

import torch
import torch.distributed as dist
from torch import nn

from . import validate
from .checkpoint import CKPT_SECONDS, Checkpointer, config_diff, load_checkpoint, rng_state, set_rng_state
from .device import autocast
from .distributed import cleanup_distributed, setup_distributed, world
from .progress import Progress

__all__ = ["LossFn", "TrainConfig", "TrainStats", "build_optimizer", "check_loss", "cleanup_distributed", "load_run",
           "lr_at", "set_lr", "setup_distributed", "train", "update"]

LossFn = Callable[[nn.Module, torch.Tensor, "torch.Tensor | None", torch.Generator], torch.Tensor]
_CKPT_KEYS = ("model", "optimizer", "step", "cfg", "seed", "rng", "losses", "seconds", "images_per_s")
_BOOKKEEPING = ("ckpt_every", "ckpt_seconds", "log_every")  # cfg fields that do not change the trained parameters


@dataclass(frozen=True)
class TrainConfig:
    steps: int  # optimizer steps; the lr schedule is laid out over exactly this many
    batch_size: int  # global batch, split evenly across DDP ranks
    lr: float  # peak learning rate, reached at the end of warm-up
    warmup_frac: float = 0.05  # the paper warms up 1/4 of training; at our few-thousand-step budgets 5% suffices
    weight_decay: float = 0.0  # the paper and DiT use none; when > 0 it skips biases and norm gains (MAE)
    betas: tuple[float, float] = (0.9, 0.95)  # beta2 0.95 (MAE, ViT practice) steadies Adam at high lr
    grad_clip: float | None = 1.0  # cap the global gradient norm: cheap insurance against early spikes
    ckpt_every: int | None = None  # also checkpoint every this many steps (None: by time only)
    ckpt_seconds: float | None = CKPT_SECONDS  # checkpoint at the first log point this long after the last one
    log_every: int = 10  # a loss read-out syncs the GPU, so record a mean every few steps, not every step

    def __post_init__(self):
        validate.integer("steps", self.steps, low=1)
        validate.integer("batch_size", self.batch_size, low=1)
        validate.real("lr", self.lr, low=0.0, low_open=True)
        validate.real("warmup_frac", self.warmup_frac, low=0.0, high=1.0, high_open=True)
        validate.real("weight_decay", self.weight_decay, low=0.0)
        if self.grad_clip is not None:
            validate.real("grad_clip", self.grad_clip, low=0.0, low_open=True)  # or None: no clipping
        validate.optional_integer("ckpt_every", self.ckpt_every, low=1)  # None: checkpoints by time only
        if self.ckpt_seconds is not None:
            validate.real("ckpt_seconds", self.ckpt_seconds, low=0.0)  # or None: no timed checkpoints
        validate.integer("log_every", self.log_every, low=1)


@dataclass
class TrainStats:
    steps: int  # optimizer steps completed (== cfg.steps once finished)
    seconds: float = 0.0  # wall-clock training time, summed over resumed sessions
    images_per_s: float = 0.0  # global (all ranks) throughput of the last session, after device syncs
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, mean loss since previous entry)
    resumed_from: int | None = None  # step of the checkpoint this run continued from, None if fresh


# -- the parts ------------------------------------------------------------------------------------


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


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def build_optimizer(params: Iterable[nn.Parameter], cfg: TrainConfig, device: torch.device | str, *,
                    decay_vectors: bool = False) -> torch.optim.AdamW:
    """AdamW with cfg's lr, betas and weight decay over the trainable ``params``.

    Weight decay only on matrices unless ``decay_vectors`` (biases and norm gains are exempt, as in MAE);
    the fused CUDA kernel updates all parameters in one launch, foreach does it in a few on other devices.
    """
    params = [p for p in params if p.requires_grad]
    vector_decay = cfg.weight_decay if decay_vectors else 0.0
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": vector_decay}]
    fused = torch.device(device).type == "cuda"
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, betas=cfg.betas,
                             fused=fused or None, foreach=None if fused else True)


def update(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: list[nn.Parameter],
           grad_clip: float | None = None) -> None:
    """One optimizer step on ``loss``: clear the gradients, backpropagate, clip their global norm, step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # under DDP this also averages the gradients across ranks
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()


def check_loss(loss: torch.Tensor, batch: torch.Tensor, step: int, desc: str) -> None:
    """Stop before an update with a loss that is not finite, saying which went first: the input or the loss.

    One ``isfinite`` on the scalar loss per step (a single number; on a GPU it waits for the forward pass).
    Only when it fails is the batch inspected: non-finite inputs mean broken data or latents, a finite
    batch means the training itself diverged. The update is never applied, so the last checkpoint holds
    the weights before it."""
    if bool(torch.isfinite(loss.detach())):
        return
    try:
        validate.finite(batch, f"{desc}: the input batch of step {step + 1}")
    except ValueError as e:
        raise FloatingPointError(f"{e}. The input was not finite before the loss ({loss.item()}) was: look at "
                                 "the data or the latents, not at the training") from None
    raise FloatingPointError(f"{desc}: the loss is {loss.item()} at step {step + 1} while every value of its input "
                             "batch is finite: the training diverged; lower the learning rate?")


def _settings(cfg: dict, seed: int, world_size: int | None) -> dict:
    """What decides a denoiser's trained parameters: cfg without bookkeeping, the seed, the world size.

    world_size None: not compared (a finished run can be loaded by any number of processes)."""
    out = {k: v for k, v in cfg.items() if k not in _BOOKKEEPING}
    out["seed"] = seed
    if world_size is not None:  # each rank resumes its own generators, so the count must match
        out["world_size"] = world_size
    return out


def load_run(ckpt_path, cfg: TrainConfig, seed: int) -> dict | None:
    """The checkpoint at ``ckpt_path`` of the run (cfg, seed), checked; the one loader of a denoiser's weights.

    None (with a warning naming the file and what is wrong) when there is nothing usable: no file, a damaged
    one, a missing entry, or weights that are not finite. ValueError naming the settings that differ when
    it belongs to another run. :func:`train` resumes from it (or returns at once when it is finished), and
    ``experiment.load_model`` loads it: a checkpoint one of them trusts, the other does too."""
    _, world_size = world()
    ckpt = load_checkpoint(ckpt_path, _CKPT_KEYS, finite=("model",)) if ckpt_path is not None else None
    if ckpt is None:
        return None
    complete = ckpt["step"] >= cfg.steps
    diff = config_diff(_settings(ckpt["cfg"], ckpt["seed"], None if complete else len(ckpt["rng"])),
                       _settings(asdict(cfg), seed, None if complete else world_size))
    if diff:
        raise ValueError(f"checkpoint {ckpt_path} belongs to another run: {'; '.join(diff)}. "
                         "Use the same settings, or another ckpt_path to start a new run")
    return ckpt


def _resume(ckpt_path, cfg: TrainConfig, seed: int, model: nn.Module, optimizer, data_gen, loss_gen,
            device: torch.device, desc: str) -> tuple[TrainStats, dict | None]:
    """Load a checkpoint of this run (:func:`load_run`) into model, optimizer and generators.

    Returns its stats (fresh ones without a checkpoint) and this rank's loss window for the Progress. A
    complete checkpoint loads the model only (the caller returns at once)."""
    rank, _ = world()
    ckpt = load_run(ckpt_path, cfg, seed)
    if ckpt is None:
        return TrainStats(steps=0), None
    complete = ckpt["step"] >= cfg.steps
    model.load_state_dict(ckpt["model"])
    stats = TrainStats(steps=ckpt["step"], seconds=ckpt["seconds"], images_per_s=ckpt["images_per_s"],
                       losses=[tuple(e) for e in ckpt["losses"]], resumed_from=ckpt["step"])
    if complete:
        if rank == 0:
            print(f"{desc}: {ckpt_path} is complete ({stats.steps} steps); nothing to train")
        return stats, None
    optimizer.load_state_dict(ckpt["optimizer"])
    set_rng_state(ckpt["rng"][rank], data_gen, loss_gen, device)
    if rank == 0:
        print(f"{desc}: resuming from step {stats.steps} ({ckpt_path})")
    return stats, ckpt["loss_window"][rank] if "loss_window" in ckpt else None


def _on_device(images, labels, cfg: TrainConfig, device: torch.device, world_size: int):
    """Check the data and move it to the device once: a batch is then one indexing op, no DataLoader.

    Returns (images, labels, per-rank batch size)."""
    if cfg.batch_size % world_size:
        raise ValueError(f"batch_size={cfg.batch_size} is not divisible by the world size {world_size}")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    return images.to(device), None if labels is None else labels.to(device), cfg.batch_size // world_size


def _checkpoint_state(model, optimizer, cfg: TrainConfig, seed: int, stats: TrainStats, bar: Progress,
                      data_gen, loss_gen, device: torch.device) -> Callable[[int], dict]:
    """state(step) -> what a denoiser's checkpoint holds: everything that decides the remaining steps."""
    _, world_size = world()
    seconds_before = stats.seconds

    def state(step: int) -> dict:
        rng, window = [rng_state(data_gen, loss_gen, device)], [bar.window()]
        if world_size > 1:  # each rank's generators and loss sum, so that every rank resumes exactly
            rng, window = [None] * world_size, [None] * world_size
            dist.all_gather_object(rng, rng_state(data_gen, loss_gen, device))
            dist.all_gather_object(window, bar.window())
        stats.seconds = seconds_before + bar.elapsed()
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "cfg": asdict(cfg), "seed": seed, "rng": rng, "loss_window": window, "losses": stats.losses,
                "seconds": stats.seconds, "images_per_s": stats.images_per_s}

    return state


# -- the loop -------------------------------------------------------------------------------------


# long: the whole loop, from the optimizer to the last checkpoint, reads in one place; each numbered part is
# a call to a named piece above or in checkpoint.py / progress.py.
def train(model: nn.Module, loss_fn: LossFn, images: torch.Tensor, labels: torch.Tensor | None,
          cfg: TrainConfig, *, device: torch.device | str, ckpt_path: str | os.PathLike | None = None,
          seed: int = 0, desc: str = "train", progress: bool = True,
          on_step: Callable[[int, TrainStats], None] | None = None) -> TrainStats:
    """Train `model` in place for cfg.steps AdamW steps on random batches of (images, labels).

    images: (N, ...) and labels: (N,) or None, on any device (moved to `device` once).
    loss_fn(model, x, y, generator) -> scalar; it must draw all its randomness from `generator`. A loss
      that is not finite stops training before its update, saying whether the batch was (:func:`check_loss`).
    ckpt_path: resume from it when it holds a valid checkpoint of this configuration (ValueError
      naming the fields when it holds another), return at once when it is complete, start over with a
      warning when it is corrupted; written every cfg.ckpt_every steps, at the first log point
      cfg.ckpt_seconds after the last write, at the end, and on Ctrl-C or SIGTERM (after the current step).
    on_step(step, stats): called on every rank after each step (step = steps done); may raise.
    """
    rank, world_size = world()
    device = torch.device(device)
    images, labels, batch = _on_device(images, labels, cfg, device, world_size)
    model.to(device)

    # 1. AdamW, and two seeded generators on the device: batch indices, and the loss's noise and t.
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, cfg, device)
    data_gen = torch.Generator(device).manual_seed(seed + rank)
    loss_gen = torch.Generator(device).manual_seed(seed + rank + 2**32)  # a separate stream

    # 2. Resume, or return a finished run as it is. DDP wraps the model after loading.
    stats, window = _resume(ckpt_path, cfg, seed, model, optimizer, data_gen, loss_gen, device, desc)
    if stats.steps >= cfg.steps:
        return stats
    start, seconds_before = stats.steps, stats.seconds
    net = model if world_size == 1 else nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    bar = Progress(desc, start=start, steps=cfg.steps, batch_size=cfg.batch_size, log_every=cfg.log_every,
                   device=device, enabled=progress and rank == 0, world_size=world_size, losses=stats.losses,
                   window=window)
    state = _checkpoint_state(model, optimizer, cfg, seed, stats, bar, data_gen, loss_gen, device)
    ckpt = Checkpointer(ckpt_path, state, start=start, steps=cfg.steps, every=cfg.ckpt_every,
                        seconds=cfg.ckpt_seconds, desc=desc, rank=rank, world_size=world_size, device=device)

    # 3. For each step: a batch, the loss, one update; then the log, a checkpoint when due, the callback.
    was_training = model.training
    model.train()
    try:
        with ckpt, bar:
            for step in range(start, cfg.steps):
                with ckpt.updating(step):
                    set_lr(optimizer, lr_at(step, cfg))
                    idx = torch.randint(0, images.shape[0], (batch,), generator=data_gen, device=device)  # (B,)
                    x, y = images[idx], None if labels is None else labels[idx]
                    with autocast(device):  # bf16 matmuls where the device supports them
                        loss = loss_fn(net, x, y, loss_gen)
                    check_loss(loss, x, step, desc)  # not finite: stop, before the update, saying why
                    update(optimizer, loss, params, cfg.grad_clip)
                stats.steps = step + 1
                log_point = bar.log(step + 1, loss)
                with bar.paused():  # not training time: left out of images/s
                    ckpt.after_step(step + 1, log_point)
                    if on_step is not None:
                        on_step(step + 1, stats)
                ckpt.stop_if_requested()
    finally:
        model.train(was_training)

    # 4. Throughput of this session (global over ranks), the total time, the final checkpoint.
    stats.images_per_s = bar.images_per_s(cfg.steps) or stats.images_per_s
    stats.seconds = seconds_before + bar.elapsed()
    if ckpt_path:
        ckpt.save(cfg.steps)
    return stats
