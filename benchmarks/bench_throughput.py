"""Training throughput of our DiT against timm's VisionTransformer of the same shape, in one process.

    .venv/bin/python benchmarks/bench_throughput.py                       # = make bench: lecture and full
    .venv/bin/python benchmarks/bench_throughput.py --threads 1 --repeats 9
    .venv/bin/python benchmarks/bench_throughput.py --device cuda --seconds 1

One training step is what ldae_lite.train does (bf16 autocast where the device has it, MSE loss,
backward, clipping, AdamW with train.py's settings), on the same batch for both networks: ours on tokens
(N, 16, 64) with a noise level t per image, timm's VisionTransformer (no class token, per-token head,
global_pool='') on the image (N, 1, 32, 32) that its stride-8 patch embedding cuts into the same tokens.
Same width, depth, heads, MLP ratio, batch, dtype and optimiser, in one process.

Equal shape is not equal work: ours also runs its timestep conditioning (the t-MLP, and per block an
adaLN Linear W -> 6W with its modulate and gate arithmetic): a few % more matmul FLOPs, and 6 W^2 more
weights per block (timm's block has 12 W^2) for AdamW. The headline ratio, ours / timm in images per
second, charges all of that to ours; the ratio at equal work credits the extra FLOPs, not the rest.

On CPU our Attention pins torch's "math" SDPA backend (models.py), so the fair comparison pins timm to
it too, and timm on torch's default choice is timed as well; on CUDA both use torch's default.

Windows of ~--seconds run interleaved and rotated for --repeats rounds; the ratio is taken within a
round and reported as median and range over rounds (and over the quiet rounds). Each window records CPU
time, page faults and other jobs' CPU use. MFU is quoted only against a matmul peak that held still
over repeated readings. Details: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import math
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

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules below, however this is loaded
import bench_common  # noqa: E402
import bench_kernels  # noqa: E402
import throughput_report  # noqa: E402
from throughput_report import OURS, TIMM, apply_peak, paired_ratios, summarise  # noqa: E402, F401

try:
    import resource  # Unix only: page-fault counts
except ImportError:  # pragma: no cover - Windows
    resource = None

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
    """A model ready to train: a step closure, what the table reports about it, and its windows."""

    name: str
    attention: str  # which SDPA backend its attention runs
    params: int
    flops_per_image: float
    step: Callable[[], None]
    img_per_s: list[float] = dataclasses.field(default_factory=list)  # one entry per window (round)
    cpu_ms_per_step: list[float] = dataclasses.field(default_factory=list)
    faults_per_step: list[float] = dataclasses.field(default_factory=list)
    background_cpus: list[float] = dataclasses.field(default_factory=list)  # other jobs' CPUs in use
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


def attention_backends(device: torch.device) -> tuple[str, list[tuple[str, SDPBackend | None]]]:
    """Ours' attention backend label, and timm's (label, backend) list: the same backend first.

    On CPU models.Attention pins the math backend, so timm is pinned to it too and also timed on torch's
    default; elsewhere both run torch's default choice.
    """
    if device.type == "cpu":
        return "math (pinned in models.py)", [("math (pinned)", SDPBackend.MATH), ("default", None)]
    return "default", [("default", None)]


def build_candidates(cfg: BenchConfig, device: torch.device, with_timm: bool = True,
                     baseline: tuple[str, type] | None = None) -> list[Candidate]:
    """Ours, then timm's ViT on ours' attention backend (the fair pair), then (CPU) timm on torch's default,
    then, given ``baseline`` = (git revision, its DiT class), ours as it was at that revision."""
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
    ours_backend, timm_backends = attention_backends(device)
    out = [Candidate(OURS, ours_backend, ours.num_params(), ours.flops_per_image(),
                     _make_step(ours, lambda: ours(tokens, t), target, cfg, device, None))]
    if baseline is not None:
        rev, dit_class = baseline
        torch.manual_seed(0)
        old = dit_class(PATCH_DIM, TOKENS, width=b.width, depth=b.depth, heads=b.heads, mlp_ratio=b.mlp_ratio)
        old = old.to(device).train()
        out.append(Candidate(f"{OURS} @ {rev}", ours_backend, old.num_params(), old.flops_per_image(),
                             _make_step(old, lambda: old(tokens, t), target, cfg, device, None)))
    if not with_timm:
        return out
    from timm.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(img_size=IMAGE, patch_size=PATCH, in_chans=CHANNELS, num_classes=PATCH_DIM,
                            global_pool="", class_token=False, embed_dim=b.width, depth=b.depth,
                            num_heads=b.heads, mlp_ratio=b.mlp_ratio).to(device)
    vit.train()
    flops = vit_flops_per_image(vit, TOKENS, b.width, b.depth)
    params = sum(p.numel() for p in vit.parameters() if p.requires_grad)
    for label, backend in timm_backends:
        # one model object per backend, each with its own optimizer state
        model = vit if backend is None else copy.deepcopy(vit)
        step = _make_step(model, lambda m=model: m(images), target, cfg, device, backend)
        out.append(Candidate(TIMM, label, params, flops, step))
    return out[:1] + out[2:] + out[1:2] if baseline is not None else out  # ours, timm..., the baseline last


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource is not None else 0


def measure(candidates: list[Candidate], batch: int, device: torch.device, seconds: float, repeats: int,
            warmup: int | None = None) -> None:
    """Warm up each candidate, fix its steps per window to last ~seconds, then time interleaved windows."""
    warmup = warmup if warmup is not None else (3 if device.type == "cpu" else 10)
    for c in candidates:
        for _ in range(warmup):  # allocator, kernel selection, autotuning
            c.step()
        bench_common.sync(device)
        start = time.perf_counter()
        c.step()
        bench_common.sync(device)
        c.steps_per_window = max(1, math.ceil(seconds / max(1e-6, time.perf_counter() - start)))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
    for r in range(repeats):
        # interleaved and rotated (A B C, B C A, C A B, ...): background load and position in the round
        # hit every model alike
        for c in candidates[r % len(candidates):] + candidates[:r % len(candidates)]:
            bench_common.sync(device)
            faults, busy, cpu, start = _faults(), bench_common.cpu_busy_seconds(), time.process_time(), \
                time.perf_counter()
            for _ in range(c.steps_per_window):
                c.step()
            bench_common.sync(device)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            c.img_per_s.append(c.steps_per_window * batch / wall)
            c.cpu_ms_per_step.append(1000 * cpu / c.steps_per_window)
            c.faults_per_step.append((_faults() - faults) / c.steps_per_window)
            if busy is not None:
                c.background_cpus.append(max(0.0, (bench_common.cpu_busy_seconds() - busy - cpu) / wall))
    if device.type == "cuda":  # one peak over all candidates of the config: a bound, not per model
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        for c in candidates:
            c.peak_mem_mib = peak


def profile_pair(candidates: list[Candidate], device: torch.device, steps: int) -> list[dict]:
    """Top ops by self time (ms per step) of ours and of the same-backend timm (bench_common.profile_ops)."""
    pair = [candidates[0]] + [c for c in candidates if c.name == TIMM][:1]
    rows = bench_common.profile_ops([c.step for c in pair], device, steps)
    return [dict(op=r["op"], ours_ms=r["ms"][0], timm_ms=r["ms"][-1]) for r in rows]


def run_config(cfg: BenchConfig, device: torch.device, with_timm: bool, seconds: float, repeats: int,
               profile_steps: int, baseline: tuple[str, type] | None = None) -> dict:
    batch = cfg.batch_size(device)
    candidates = build_candidates(cfg, device, with_timm, baseline)
    print(f"{cfg.name}: width {cfg.budget.width}, depth {cfg.budget.depth}, heads {cfg.budget.heads}, "
          f"batch {batch}: timing {', '.join(f'{c.name} [{c.attention}]' for c in candidates)}", flush=True)
    measure(candidates, batch, device, seconds, repeats)
    summary = summarise(cfg, candidates, batch, TOKENS)
    if profile_steps > 0:
        summary["profile"] = profile_pair(candidates, device, profile_steps)
    del candidates
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return summary


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: $LDAE_DEVICE or best)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="length of one timed window per model (default 3 on CPU, 1 on GPU)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds of windows (default 5)")
    parser.add_argument("--configs", nargs="+", default=["lecture", "full"], choices=tuple(CONFIGS))
    parser.add_argument("--out", default=None,
                        help="JSON path; the Markdown goes next to it (default benchmarks/results/throughput_<kind>)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for this process (default: torch's)")
    parser.add_argument("--allocator", choices=("keep", "default"), default="keep",
                        help="keep: glibc keeps freed memory (device.keep_freed_memory); default: leave it")
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="also profile ours and timm (same backend) for STEPS steps per size")
    parser.add_argument("--peak-seconds", type=float, default=0.5, help="length of one peak reading")
    parser.add_argument("--baseline", default=None, metavar="REV",
                        help="also time ours as models.py was at git revision REV (this tree's speed-up over it)")
    parser.add_argument("--no-timm", action="store_true", help="time ours alone (also the fallback without timm)")
    parser.add_argument("--no-kernels", action="store_true",
                        help="skip bench_kernels.py (models.py's kernel choices, results/kernels_<kind>)")
    args = parser.parse_args(argv)
    checks = [(args.repeats >= 1, f"--repeats={args.repeats} must be >= 1"),
              (args.seconds is None or args.seconds > 0, f"--seconds={args.seconds} must be > 0"),
              (args.peak_seconds > 0, f"--peak-seconds={args.peak_seconds} must be > 0"),
              (args.threads is None or args.threads >= 1, f"--threads={args.threads} must be >= 1"),
              (args.profile >= 0, f"--profile={args.profile} must be >= 0")]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    return args


def _timm_version(with_timm: bool) -> str | None:
    if not with_timm:
        return None
    try:
        import timm
    except ImportError:
        print("timm is not installed (pip install -e '.[bench]'): timing ours alone")
        return None
    return timm.__version__


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = device_mod.get_device(args.device)
    seconds = args.seconds if args.seconds is not None else (3.0 if device.type == "cpu" else 1.0)
    timm_version = _timm_version(not args.no_timm)
    meta = bench_common.run_meta(device, "bench_throughput.py", sys.argv[1:] if argv is None else argv)
    kept = args.allocator == "keep" and device_mod.keep_freed_memory()
    baseline = (args.baseline, bench_common.models_at(args.baseline).DiT) if args.baseline else None
    bf16 = device_mod.supports_bf16(device)
    dtype, name = (torch.bfloat16, "bf16") if bf16 else (torch.float32, "fp32")

    def read_peak(dt: torch.dtype) -> list[float]:
        return device_mod.peak_flops_samples(device, dt, repeats=3, seconds=args.peak_seconds)

    samples = {name: [], "fp32": read_peak(torch.float32) if bf16 else []}  # fp32: what bf16 buys here
    summaries = []
    for config in args.configs:
        samples[name] += read_peak(dtype)  # before each size, and once more after the last
        summaries.append(run_config(CONFIGS[config], device, timm_version is not None, seconds, args.repeats,
                                    args.profile, baseline))
    samples[name] += read_peak(dtype)
    peaks = {k: device_mod.peak_summary(v) for k, v in samples.items() if v}
    apply_peak(summaries, peaks[name])

    kernels = None if args.no_kernels else bench_kernels.run(device)  # before any results file is written
    meta.update(timm=timm_version, autocast=name, peak_flops=peaks[name]["median"],
                peak_steady=peaks[name]["steady"], seconds_per_window=seconds, repeats=args.repeats,
                allocator="glibc keeps freed memory" if kept else "default", load_after=bench_common.load_average())
    report = dict(meta=meta, peaks=peaks, configs=summaries)
    report["markdown"] = throughput_report.to_markdown(report)
    print("\n" + report["markdown"])
    out = Path(args.out) if args.out else RESULTS / f"throughput_{device.type}.json"
    md = bench_common.write_results(out, report)
    print(f"written: {out} and {md}")
    if kernels is not None:  # next to the throughput results, wherever --out put them
        kernels_meta = dict(meta, command=meta["command"] + " (its kernel section)")
        bench_kernels.write(device, kernels, [], out.with_name(f"kernels_{device.type}.json"), kernels_meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
