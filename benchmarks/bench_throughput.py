"""Training throughput of our DiT against timm's VisionTransformer of the same shape, in one process.

    .venv/bin/python benchmarks/bench_throughput.py                       # this machine's best device
    .venv/bin/python benchmarks/bench_throughput.py --device cuda --seconds 2 --configs lecture full

One training step is what ldae_lite.train does: forward under bf16 autocast (where the device has it),
backward, gradient-norm clipping and an AdamW step with train.py's settings (betas, clipping, decay on
matrices only, fused on CUDA, foreach elsewhere). Both networks see the same batch of 16 tokens of
dimension 64 (Fashion-MNIST's 32 x 32 image in 8 x 8 patches): ours as tokens (N, 16, 64), timm's as the
image (N, 1, 32, 32) that its stride-8 patch embedding turns into the same 16 tokens. timm's model has
no class token and a per-token head to 64 (global_pool=''), so both predict (N, 16, 64) for an MSE loss.

Attention backend. On CPU our Attention pins torch's "math" SDPA backend (models.py: the bf16 flash
kernel's backward is slow there). The fair comparison pins timm to the same backend; timm with torch's
default choice is reported too. On CUDA both use torch's default (flash / memory-efficient kernels).

Measurement: each model warms up, then its step count is fixed so that one timed
window lasts about --seconds; windows run interleaved and rotated (A B C, B C A, ...) so that other jobs' load
spreads over all models, each window ends with a device sync, and the median window is reported.
MFU = achieved FLOP/s / device.peak_flops (a large matmul measured here, bf16 where supported), with
FLOPs counted as in DiT.flops_per_image: matmuls only, 2 per multiply-add, x3 for the backward pass.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import math
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ldae_lite import budgets
from ldae_lite import device as device_mod
from ldae_lite.models import DiT
from ldae_lite.train import TrainConfig

IMAGE, PATCH, CHANNELS = 32, 8, 1  # Fashion-MNIST padded to 32 x 32, the project's 8 x 8 patches
TOKENS, PATCH_DIM = (IMAGE // PATCH) ** 2, PATCH * PATCH * CHANNELS  # 16 tokens of dimension 64
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class BenchConfig:
    """One model size: shape and optimiser from a budget, the batch per device kind."""

    name: str
    budget: budgets.Budget
    batch_gpu: int
    batch_cpu: int  # the full budget's 512 would make one CPU window last many seconds

    def batch_size(self, device: torch.device) -> int:
        return self.batch_cpu if device.type == "cpu" else self.batch_gpu


CONFIGS = {
    "lecture": BenchConfig("lecture", budgets.BUDGETS["lecture"], batch_gpu=256, batch_cpu=256),
    "full": BenchConfig("full", budgets.BUDGETS["full"], batch_gpu=512, batch_cpu=128),
    "smoke": BenchConfig("smoke", budgets.BUDGETS["smoke"], batch_gpu=64, batch_cpu=16),  # tests only
}


@dataclass
class Candidate:
    """A model ready to train: a step closure plus what the table reports about it."""

    name: str
    attention: str  # which SDPA backend its attention runs
    params: int
    flops_per_image: float
    step: Callable[[], None]
    img_per_s: list[float] = dataclasses.field(default_factory=list)
    steps_per_window: int = 0
    peak_mem_mib: float | None = None


def vit_flops_per_image(model: nn.Module, tokens: int, width: int, depth: int) -> float:
    """Training FLOPs of a plain ViT counted from its parameter shapes, as DiT.flops_per_image counts.

    Every Linear and the patch-embedding conv act once per token: 2 * (weight elements) * tokens;
    attention adds QK^T and AV, 2 * 2 * tokens^2 * width per block; x3 for the backward pass.
    """
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    return float(3 * (2 * weights * tokens + depth * 4 * tokens * tokens * width))


def _optimizer(model: nn.Module, cfg: BenchConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW exactly as ldae_lite.train builds it (decay on matrices only; fused on CUDA)."""
    train_cfg = TrainConfig(steps=1, batch_size=1, lr=cfg.budget.lr, weight_decay=cfg.budget.weight_decay)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": train_cfg.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    fused = device.type == "cuda"
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=train_cfg.lr, betas=train_cfg.betas,
                             fused=fused or None, foreach=None if fused else True)


def _make_step(model: nn.Module, forward: Callable[[], torch.Tensor], target: torch.Tensor, cfg: BenchConfig,
               device: torch.device, backend: SDPBackend | None) -> Callable[[], None]:
    """One training step as in train.py: autocast forward + MSE, backward, clip, AdamW."""
    optimizer = _optimizer(model, cfg, device)
    clip = TrainConfig(steps=1, batch_size=1, lr=1.0).grad_clip
    params = [p for p in model.parameters() if p.requires_grad]

    def step() -> None:
        with sdpa_kernel(backend) if backend is not None else contextlib.nullcontext():
            with device_mod.autocast(device):
                loss = F.mse_loss(forward().float(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()

    return step


def build_candidates(cfg: BenchConfig, device: torch.device, with_timm: bool = True) -> list[Candidate]:
    """Ours, and timm's ViT with (CPU) our pinned math backend and torch's default; same batch for all."""
    b, n = cfg.budget, cfg.batch_size(device)
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(n, CHANNELS, IMAGE, IMAGE, generator=gen).to(device)  # (N, 1, 32, 32)
    tokens = images.unfold(2, PATCH, PATCH).unfold(3, PATCH, PATCH)  # (N, 1, 4, 4, 8, 8)
    tokens = tokens.permute(0, 2, 3, 4, 5, 1).reshape(n, TOKENS, PATCH_DIM).contiguous()  # (N, 16, 64)
    t = (torch.rand(n, generator=gen) * 1000).to(device)  # (N,) noise levels, as the objectives draw them
    target = torch.randn(n, TOKENS, PATCH_DIM, generator=gen).to(device)  # (N, 16, 64)

    torch.manual_seed(0)
    ours = DiT(PATCH_DIM, TOKENS, width=b.width, depth=b.depth, heads=b.heads, mlp_ratio=b.mlp_ratio).to(device)
    ours.train()
    cpu = device.type == "cpu"
    out = [Candidate("ours (DiT)", "math (pinned in models.py)" if cpu else "default", ours.num_params(),
                     ours.flops_per_image(), _make_step(ours, lambda: ours(tokens, t), target, cfg, device, None))]
    if not with_timm:
        return out
    from timm.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(img_size=IMAGE, patch_size=PATCH, in_chans=CHANNELS, num_classes=PATCH_DIM,
                            global_pool="", class_token=False, embed_dim=b.width, depth=b.depth,
                            num_heads=b.heads, mlp_ratio=b.mlp_ratio).to(device)
    vit.train()
    flops = vit_flops_per_image(vit, TOKENS, b.width, b.depth)
    params = sum(p.numel() for p in vit.parameters() if p.requires_grad)
    backends = [("math (pinned)", SDPBackend.MATH), ("default", None)] if cpu else [("default", None)]
    for label, backend in backends:
        # one model object per backend, each with its own optimizer state
        model = vit if backend is None else copy.deepcopy(vit)
        step = _make_step(model, lambda m=model: m(images), target, cfg, device, backend)
        out.append(Candidate("timm ViT", label, params, flops, step))
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def measure(candidates: list[Candidate], batch: int, device: torch.device, seconds: float, repeats: int,
            warmup: int | None = None) -> None:
    """Warm up each candidate, fix its steps per window to last ~seconds, then time interleaved windows."""
    warmup = warmup if warmup is not None else (3 if device.type == "cpu" else 10)
    for c in candidates:
        for _ in range(warmup):  # allocator, kernel selection, autotuning
            c.step()
        _sync(device)
        start = time.perf_counter()
        c.step()
        _sync(device)
        c.steps_per_window = max(1, math.ceil(seconds / max(1e-6, time.perf_counter() - start)))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
    for r in range(repeats):
        # interleaved and rotated (A B C, B C A, C A B, ...): background load and position in the round
        # hit every model alike
        for c in candidates[r % len(candidates):] + candidates[:r % len(candidates)]:
            _sync(device)
            start = time.perf_counter()
            for _ in range(c.steps_per_window):
                c.step()
            _sync(device)
            c.img_per_s.append(c.steps_per_window * batch / (time.perf_counter() - start))
    if device.type == "cuda":  # one peak over all candidates of the config: a bound, not per model
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        for c in candidates:
            c.peak_mem_mib = peak


def summarise(cfg: BenchConfig, candidates: list[Candidate], batch: int, peak: float) -> list[dict]:
    """One row per candidate: median img/s, spread, ms/step, TFLOP/s, MFU and the ratio to timm."""
    rows = []
    for c in candidates:
        med = statistics.median(c.img_per_s)
        rows.append(dict(config=cfg.name, model=c.name, attention=c.attention, batch=batch, width=cfg.budget.width,
                         depth=cfg.budget.depth, heads=cfg.budget.heads, tokens=TOKENS, params=c.params,
                         img_per_s=med, img_per_s_all=c.img_per_s, steps_per_window=c.steps_per_window,
                         ms_per_step=1000 * batch / med, gflop_per_image=c.flops_per_image / 1e9,
                         tflop_per_s=med * c.flops_per_image / 1e12, mfu=med * c.flops_per_image / peak,
                         peak_mem_mib=c.peak_mem_mib))
    ours = rows[0]
    for r in rows[1:]:  # ours / timm at the same backend (and at timm's default), > 1: ours is faster
        key = "math" if r["attention"].startswith("math") else "default"
        ours[f"speed_vs_timm_{key}"] = ours["img_per_s"] / r["img_per_s"]
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = ["| config | model | attention | batch | img/s (median) | range | ms/step | GFLOP/img | TFLOP/s | MFU |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lo, hi = min(r["img_per_s_all"]), max(r["img_per_s_all"])
        lines.append(f"| {r['config']} ({r['width']}x{r['depth']}, {r['heads']} heads) | {r['model']} | "
                     f"{r['attention']} | {r['batch']} | {r['img_per_s']:.0f} | {lo:.0f}-{hi:.0f} | "
                     f"{r['ms_per_step']:.1f} | {r['gflop_per_image']:.3f} | {r['tflop_per_s']:.3f} | "
                     f"{100 * r['mfu']:.1f}% |")
    ratios = [f"{r['config']}: ours / timm = " + ", ".join(f"{r[k]:.2f} ({k.rsplit('_', 1)[1]} attention)"
                                                          for k in r if k.startswith("speed_vs_timm_"))
              for r in rows if any(k.startswith("speed_vs_timm_") for k in r)]
    return "\n".join(lines + [""] + ratios) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: $LDAE_DEVICE or best)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="length of one timed window per model (default 3 on CPU, 1 on GPU)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved windows per model (median)")
    parser.add_argument("--configs", nargs="+", default=["lecture", "full"], choices=tuple(CONFIGS))
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/throughput_<kind>.json)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for this process (default: torch's)")
    parser.add_argument("--no-timm", action="store_true", help="time ours alone (also the fallback without timm)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or (args.seconds is not None and not args.seconds > 0):
        raise ValueError(f"--repeats={args.repeats} must be >= 1 and --seconds={args.seconds} > 0")

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = device_mod.get_device(args.device)
    seconds = args.seconds if args.seconds is not None else (3.0 if device.type == "cpu" else 1.0)
    with_timm = not args.no_timm
    timm_version = None
    if with_timm:
        try:
            import timm

            timm_version = timm.__version__
        except ImportError:
            print("timm is not installed (pip install -e '.[bench]'): timing ours alone")
            with_timm = False
    bf16 = device_mod.supports_bf16(device)
    peak = device_mod.peak_flops(device, torch.bfloat16 if bf16 else torch.float32)
    print(f"peak ({'bf16' if bf16 else 'fp32'} matmul, measured): {peak / 1e12:.2f} TFLOP/s; "
          f"{'bf16 autocast' if bf16 else 'fp32'}; windows of ~{seconds:g} s x {args.repeats}")

    rows = []
    for name in args.configs:
        cfg = CONFIGS[name]
        batch = cfg.batch_size(device)
        candidates = build_candidates(cfg, device, with_timm)
        print(f"{name}: width {cfg.budget.width}, depth {cfg.budget.depth}, heads {cfg.budget.heads}, "
              f"batch {batch}: timing {', '.join(f'{c.name} [{c.attention}]' for c in candidates)}", flush=True)
        measure(candidates, batch, device, seconds, args.repeats)
        rows += summarise(cfg, candidates, batch, peak)
        del candidates
        if device.type == "cuda":
            torch.cuda.empty_cache()

    table = to_markdown(rows)
    print("\n" + table)
    meta = dict(device=device_mod.describe(device), device_kind=device.type, torch=torch.__version__,
                timm=timm_version, python=platform.python_version(), autocast="bf16" if bf16 else "fp32",
                peak_flops=peak, threads=torch.get_num_threads(), seconds_per_window=seconds,
                repeats=args.repeats, command=" ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
                created=time.strftime("%Y-%m-%d %H:%M:%S %z"))
    out = Path(args.out) if args.out else RESULTS / f"throughput_{device.type}.json"
    from ldae_lite.cache import write_json  # atomic: tmp file + os.replace

    write_json(out, dict(meta=meta, rows=rows, markdown=table))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
