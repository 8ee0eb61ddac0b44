"""Training throughput of our DiT against timm's VisionTransformer of the same shape, in one process.

    .venv/bin/python benchmarks/bench_throughput.py                       # = make bench: lecture and full
    .venv/bin/python benchmarks/bench_throughput.py --threads 1 --repeats 9
    .venv/bin/python benchmarks/bench_throughput.py --device cuda --seconds 1

One training step is what ldae_lite.train does: forward under bf16 autocast (where the device has it),
backward, gradient-norm clipping and an AdamW step with train.py's settings (betas, clipping, decay on
matrices only, fused on CUDA, foreach elsewhere). Both networks see the same batch of 16 tokens of
dimension 64 (Fashion-MNIST's 32 x 32 image in 8 x 8 patches): ours as tokens (N, 16, 64) with a noise
level t per image, timm's as the image (N, 1, 32, 32) that its stride-8 patch embedding turns into the
same 16 tokens. timm's model has no class token and a per-token head to 64 (global_pool=''), so both
predict (N, 16, 64) for an MSE loss. Same width, depth, heads, MLP ratio, batch, dtype and optimiser.

Equal shape is not equal work: ours also runs its timestep conditioning (the t-MLP, and per block an
adaLN Linear W -> 6W with its modulate and gate arithmetic): a few % more matmul FLOPs, and 6 W^2 more
weights per block (timm's block has 12 W^2) for AdamW to update. The headline ratio, ours / timm in
images per second, charges all of that to ours; the ratio at equal work (achieved matmul FLOP/s)
credits the extra FLOPs, not the rest.

Attention backend. On CPU our Attention pins torch's "math" SDPA backend (models.py); the fair
comparison pins timm to the same backend, and timm with torch's default choice is timed too. On CUDA
both use torch's default (flash / memory-efficient kernels).

Measurement. Each model warms up, then its step count is fixed so that one timed window lasts about
--seconds; windows run interleaved and rotated (A B C, B C A, ...) for --repeats rounds, each ended by
a device sync. Background load moves slowly against a window, so the ratio is taken within a round
(ours' window over timm's in the same round) and its median and range over rounds are reported, also
over the quiet rounds alone. Each window records the process CPU time and page faults per step and the
CPUs other jobs kept busy. glibc is asked to keep freed memory (device.keep_freed_memory; --allocator
default to leave it). The matmul peak (MFU's denominator) is read three times before each size and
after the last; MFU is quoted only when those readings agree within device.PEAK_STEADY_SPREAD, else
the table says the machine is too noisy. benchmarks/README.md has the details.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import math
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

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules below, however this is loaded
import bench_common  # noqa: E402
import bench_kernels  # noqa: E402
import throughput_report  # noqa: E402

try:
    import resource  # Unix only: page-fault counts
except ImportError:  # pragma: no cover - Windows
    resource = None

IMAGE, PATCH, CHANNELS = 32, 8, 1  # Fashion-MNIST padded to 32 x 32, the project's 8 x 8 patches
TOKENS, PATCH_DIM = (IMAGE // PATCH) ** 2, PATCH * PATCH * CHANNELS  # 16 tokens of dimension 64
RESULTS = Path(__file__).resolve().parent / "results"
OURS, TIMM = "ours (DiT)", "timm ViT"
QUIET_CPUS = 0.25  # a round is quiet when other jobs kept fewer CPUs than this busy during both windows


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


def build_candidates(cfg: BenchConfig, device: torch.device, with_timm: bool = True) -> list[Candidate]:
    """Ours, then timm's ViT on ours' attention backend (the fair pair), then (CPU) timm on torch's default."""
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
    return out


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


def paired_ratios(ours: Candidate, other: Candidate) -> list[float]:
    """ours / other in img/s, window by window within each round (> 1: ours is faster)."""
    return [a / b for a, b in zip(ours.img_per_s, other.img_per_s)]


def summarise(cfg: BenchConfig, candidates: list[Candidate], batch: int) -> dict:
    """Rows (median img/s, spread, ms/step, TFLOP/s; MFU comes later, apply_peak) and ours / timm ratios."""
    rows = []
    for c in candidates:
        med = statistics.median(c.img_per_s)
        rows.append(dict(model=c.name, attention=c.attention, params=c.params, img_per_s=med,
                         img_per_s_all=c.img_per_s, steps_per_window=c.steps_per_window,
                         ms_per_step=1000 * batch / med, cpu_ms_per_step=statistics.median(c.cpu_ms_per_step),
                         faults_per_step=statistics.median(c.faults_per_step),
                         background_cpus=statistics.median(c.background_cpus) if c.background_cpus else None,
                         gflop_per_image=c.flops_per_image / 1e9, tflop_per_s=med * c.flops_per_image / 1e12,
                         mfu=None,
                         peak_mem_mib=c.peak_mem_mib))
    ratios = []
    for c in candidates[1:]:  # ours against each timm: the first is the same backend, the fair pair
        r = paired_ratios(candidates[0], c)
        work = candidates[0].flops_per_image / c.flops_per_image
        cpu = [b / a for a, b in zip(candidates[0].cpu_ms_per_step, c.cpu_ms_per_step)]
        quiet = [x for x, a, b in zip(r, candidates[0].background_cpus, c.background_cpus) if max(a, b) < QUIET_CPUS]
        ratios.append(dict(against=f"{c.name} [{c.attention}]", same_backend=c is candidates[1],
                           median=statistics.median(r), min=min(r), max=max(r), rounds=r,
                           equal_work_median=work * statistics.median(r), flops_ratio=work,
                           cpu_time_median=statistics.median(cpu), quiet_rounds=len(quiet),
                           quiet_median=statistics.median(quiet) if quiet else None))
    b = cfg.budget
    return dict(config=cfg.name, width=b.width, depth=b.depth, heads=b.heads, tokens=TOKENS, batch=batch,
                rows=rows, ratios=ratios)


def profile_pair(candidates: list[Candidate], device: torch.device, steps: int, top: int = 15) -> list[dict]:
    """torch.profiler over ``steps`` steps of ours and of the same-backend timm: top ops by self time, ms/step.

    Self time is wall time inside each op: on a loaded machine it includes the time other jobs held the
    CPU, so read it as where the time goes, not as an exact split.
    """
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    per_model = []
    for c in candidates[:2]:
        with profile(activities=activities) as prof:
            for _ in range(steps):
                c.step()
            bench_common.sync(device)
        times = {}
        for e in prof.key_averages():
            us = getattr(e, "self_device_time_total", 0) if device.type == "cuda" else e.self_cpu_time_total
            times[e.key] = times.get(e.key, 0.0) + us / 1000 / steps
        per_model.append(times)
    ops = sorted(set(per_model[0]) | set(per_model[-1]), key=lambda k: -max(t.get(k, 0.0) for t in per_model))
    return [dict(op=k, ours_ms=per_model[0].get(k, 0.0), timm_ms=per_model[-1].get(k, 0.0)) for k in ops[:top]]


def apply_peak(summaries: list[dict], peak: dict) -> None:
    """MFU for every row from the run's peak readings, or None where the peak did not hold still."""
    for s in summaries:
        s["peak"] = peak
        for r in s["rows"]:
            r["mfu"] = r["tflop_per_s"] * 1e12 / peak["median"] if peak["steady"] else None


def run_config(cfg: BenchConfig, device: torch.device, with_timm: bool, seconds: float, repeats: int,
               profile_steps: int) -> dict:
    batch = cfg.batch_size(device)
    candidates = build_candidates(cfg, device, with_timm)
    print(f"{cfg.name}: width {cfg.budget.width}, depth {cfg.budget.depth}, heads {cfg.budget.heads}, "
          f"batch {batch}: timing {', '.join(f'{c.name} [{c.attention}]' for c in candidates)}", flush=True)
    measure(candidates, batch, device, seconds, repeats)
    summary = summarise(cfg, candidates, batch)
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
    bf16 = device_mod.supports_bf16(device)
    dtype, name = (torch.bfloat16, "bf16") if bf16 else (torch.float32, "fp32")

    def read_peak(dt: torch.dtype) -> list[float]:
        return device_mod.peak_flops_samples(device, dt, repeats=3, seconds=args.peak_seconds)

    samples = {name: [], "fp32": read_peak(torch.float32) if bf16 else []}  # fp32: what bf16 buys here
    summaries = []
    for config in args.configs:
        samples[name] += read_peak(dtype)  # before each size, and once more after the last
        summaries.append(run_config(CONFIGS[config], device, timm_version is not None, seconds, args.repeats,
                                    args.profile))
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
