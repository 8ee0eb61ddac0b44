"""The kernel choices behind ldae_lite.models, each timed against its alternative on this machine.

    .venv/bin/python benchmarks/bench_kernels.py            # bench_throughput.py runs it too

Each piece runs forward + backward at the full budget's activation shape (the throughput benchmark's
batch x 16 tokens x width 384) under the autocast ldae_lite trains with. The chosen version and the
alternative alternate in short windows for several rounds; the ratio alternative / chosen is taken
within each round (> 1: the choice is faster here) and reported as its median and range.

- LayerNorm without affine parameters: F.layer_norm with no weight, or with a constant weight of ones
  (models.LayerNormNoAffine; outputs and gradients are bit-identical, tests/test_models.py);
- adaLN's modulate: models.modulate (shift and scale cast to x's dtype, then multiply and add) against
  the same formula with bf16 shift and scale next to a float32 x (mixed dtypes), and against one fused
  torch.addcmul (one pass forward, but its backward multiplies by its scalar factor in an extra pass);
- the gated residual x + gate * y (float32 x, bf16 gate and branch output y): as written, or fused
  into one addcmul (fewer passes, but mixed dtypes);
- GELU: the exact (erf) form models.py uses, or DiT's tanh approximation, on the MLP's hidden layer;
- attention: torch's math SDPA backend (models.Attention pins it on CPU), or torch's default choice
  (on CUDA the other way round: models.py uses the default there).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from ldae_lite import budgets
from ldae_lite import device as device_mod
from ldae_lite.models import modulate

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling module below, however this is loaded
import bench_common  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _fwd_bwd(fn: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> Callable[[], None]:
    """A closure running fn(*inputs) forward and backward (a fixed random upstream gradient)."""
    leaves = [x.detach().requires_grad_(x.is_floating_point()) for x in inputs]
    grad = None

    def run() -> None:
        nonlocal grad
        out = fn(*leaves)
        grad = torch.randn_like(out) if grad is None else grad
        torch.autograd.grad(out, [x for x in leaves if x.requires_grad], grad)

    return run


def pieces(device: torch.device, batch: int, width: int, heads: int) -> dict:
    """name -> (what models.py chose, the alternative, chosen closure, alternative closure)."""
    gen = torch.Generator().manual_seed(0)
    half = torch.bfloat16 if device_mod.supports_bf16(device) else torch.float32
    x = torch.randn(batch, 16, width, generator=gen).to(device)  # (N, L, W) residual stream, float32
    shift, scale = (0.1 * torch.randn(2, batch, width, generator=gen)).to(device, half)  # a Linear's output
    hidden = torch.randn(batch, 16, 4 * width, generator=gen).to(device, half)  # (N, L, 4W) MLP hidden
    branch = torch.randn(batch, 16, width, generator=gen).to(device, half)  # (N, L, W) attention / MLP output
    qkv = torch.randn(3, batch, heads, 16, width // heads, generator=gen).to(device, half)  # (3, N, h, L, d)
    ones = torch.ones(width, device=device)

    def attention(backend: SDPBackend | None) -> Callable[..., torch.Tensor]:
        def fn(q, k, v):
            with sdpa_kernel(backend) if backend is not None else contextlib.nullcontext():
                return F.scaled_dot_product_attention(q, k, v)
        return fn

    return {
        "LayerNorm, no affine": ("weight of ones", "no weight",
                                 _fwd_bwd(lambda a: F.layer_norm(a, (width,), ones, None, 1e-6), x),
                                 _fwd_bwd(lambda a: F.layer_norm(a, (width,), None, None, 1e-6), x)),
        "adaLN modulate": ("x * (1 + scale) + shift in x's dtype", "the same, bf16 shift and scale (mixed dtypes)",
                           _fwd_bwd(modulate, x, shift, scale),
                           _fwd_bwd(lambda a, b, c: a * (1 + c.unsqueeze(1)) + b.unsqueeze(1), x, shift, scale)),
        "adaLN modulate, fused": ("x * (1 + scale) + shift in x's dtype", "one torch.addcmul in x's dtype",
                                  _fwd_bwd(modulate, x, shift, scale),
                                  _fwd_bwd(lambda a, b, c: torch.addcmul(b.unsqueeze(1).to(a.dtype), a,
                                                                         (1 + c.unsqueeze(1)).to(a.dtype)),
                                           x, shift, scale)),
        "gated residual": ("x + gate * y, the product in y's dtype", "addcmul(x, gate, y), mixed dtypes",
                           _fwd_bwd(lambda a, g, b: a + g.unsqueeze(1) * b, x, shift, branch),
                           _fwd_bwd(lambda a, g, b: torch.addcmul(a, g.unsqueeze(1), b), x, shift, branch)),
        "GELU": ("exact (erf)", "tanh approximation", _fwd_bwd(F.gelu, hidden),
                 _fwd_bwd(lambda a: F.gelu(a, approximate="tanh"), hidden)),
        "attention (SDPA)": attention_choice(device, _fwd_bwd(attention(SDPBackend.MATH), *qkv),
                                             _fwd_bwd(attention(None), *qkv)),
    }


def attention_choice(device: torch.device, math: Callable[[], None], default: Callable[[], None]) -> tuple:
    """models.Attention's choice first: the math backend on CPU, torch's default elsewhere."""
    if device.type == "cpu":
        return "math backend", "torch's default backend", math, default
    return "torch's default backend", "math backend", default, math


def time_pair(chosen: Callable[[], None], other: Callable[[], None], device: torch.device, rounds: int,
              seconds: float) -> dict:
    """Alternate windows of both closures; per-round ms per call and the ratio other / chosen."""
    def window(fn: Callable[[], None], calls: int) -> float:
        bench_common.sync(device)
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        bench_common.sync(device)
        return 1000 * (time.perf_counter() - start) / calls

    calls = {}
    for name, fn in (("chosen", chosen), ("other", other)):
        fn()  # warm-up
        calls[name] = max(1, round(seconds / max(1e-6, window(fn, 1) / 1000)))
    ms = {"chosen": [], "other": []}
    for r in range(rounds):
        order = [("chosen", chosen), ("other", other)][:: 1 if r % 2 == 0 else -1]
        for name, fn in order:
            ms[name].append(window(fn, calls[name]))
    ratios = [o / c for c, o in zip(ms["chosen"], ms["other"])]
    return dict(chosen_ms=statistics.median(ms["chosen"]), other_ms=statistics.median(ms["other"]),
                ratio=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios), rounds=ratios)


def run(device: torch.device, rounds: int = 7, seconds: float = 0.25, batch: int | None = None,
        width: int | None = None, heads: int | None = None) -> dict:
    """Every piece on ``device``, by default at the full budget's shape and the throughput benchmark's
    batch (128 on CPU, 512 elsewhere): a dict of rows ready for the results file."""
    full = budgets.BUDGETS["full"]
    batch = batch or (128 if device.type == "cpu" else 512)
    width, heads = width or full.width, heads or full.heads
    rows = []
    with device_mod.autocast(device):
        for name, (chosen_label, other_label, chosen, other) in pieces(device, batch, width, heads).items():
            rows.append(dict(piece=name, chosen=chosen_label, alternative=other_label,
                             **time_pair(chosen, other, device, rounds, seconds)))
    return dict(shape=f"batch {batch}, 16 tokens, width {width}, {heads} heads", rows=rows)


def to_markdown(report: dict) -> str:
    m, k = report["meta"], report["kernels"]
    lines = ["# Kernel choices behind ldae_lite/models.py", "",
             f"- command: `{m['command']}`", f"- date: {m['created']}; commit {m['commit']}",
             f"- machine: {m['device']}; {m['machine']}; load average {m['load_before']}",
             f"- torch {m['torch']}; {m['threads']} threads; forward + backward at {k['shape']}, "
             f"{len(k['rows'][0]['rounds']) if k['rows'] else 0} alternating rounds", "",
             "| piece | models.py uses | alternative | ms (chosen) | ms (alternative) | alternative / chosen |",
             "|---|---|---|---|---|---|"]
    for r in k["rows"]:
        lines.append(f"| {r['piece']} | {r['chosen']} | {r['alternative']} | {r['chosen_ms']:.3f} | "
                     f"{r['other_ms']:.3f} | **{r['ratio']:.2f}** ({r['ratio_min']:.2f}-{r['ratio_max']:.2f}) |")
    lines += ["", "alternative / chosen > 1: the version models.py uses is faster on this machine (median of "
              "the per-round ratios, range in brackets)."]
    return "\n".join(lines) + "\n"


def write(device: torch.device, kernels: dict, argv: list[str], out: Path | None = None,
          meta: dict | None = None) -> Path:
    """The results file pair (JSON + Markdown) of one run of :func:`run`; returns the JSON path.

    ``meta`` (from bench_common.run_meta) when the caller read it before the run: the commit is then the
    one the code was at when timing started, not flagged by results files written meanwhile.
    """
    meta = meta if meta is not None else bench_common.run_meta(device, "bench_kernels.py", argv)
    report = dict(meta=meta, kernels=kernels)
    report["markdown"] = to_markdown(report)
    print(report["markdown"])
    out = out or RESULTS / f"kernels_{device.type}.json"
    print(f"written: {out} and {bench_common.write_results(out, report)}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: $LDAE_DEVICE or best)")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per piece (default 7)")
    parser.add_argument("--seconds", type=float, default=0.25, help="length of one window (default 0.25)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/kernels_<kind>.json)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or not args.seconds > 0:
        raise ValueError(f"--rounds={args.rounds} must be >= 1 and --seconds={args.seconds} > 0")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = device_mod.get_device(args.device)
    write(device, run(device, args.rounds, args.seconds), sys.argv[1:] if argv is None else argv,
          Path(args.out) if args.out else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
