"""Which device to run on, whether it does bf16, and how fast it really is.

Throughput is reported against the device's own measured peak (a large matmul timed here), never a
hard-coded datasheet number, so MFU means the same thing on a 2-core laptop and on an H100. The peak is
read several times (peak_flops_samples): on a shared machine it moves, and MFU is only worth quoting
when it holds still (peak_summary).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import platform
import random
import statistics
import time

import numpy as np
import torch

ENV_VAR = "LDAE_DEVICE"
_KINDS = ("cuda", "mps", "cpu")


def _as_device(device: str | torch.device | None) -> torch.device:
    return get_device(verbose=False) if device is None else torch.device(device)


def get_device(prefer: str | None = None, verbose: bool = True) -> torch.device:
    """The device to use: ``prefer`` (e.g. "cpu", "cuda:1"), else ``$LDAE_DEVICE``, else cuda > mps > cpu.

    Raises ValueError if the requested device is not one of cuda/mps/cpu or is not available here.
    """
    prefer = prefer or os.environ.get(ENV_VAR) or None
    if prefer is None:
        if torch.cuda.is_available():
            device = torch.device("cuda")
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = torch.device("mps")
        else:
            device = torch.device("cpu")
    else:
        try:
            device = torch.device(prefer)
        except RuntimeError:
            raise ValueError(f"unknown device {prefer!r}; choose one of {_KINDS} (optionally with ':index')") from None
        if device.type not in _KINDS:
            raise ValueError(f"unknown device {prefer!r}; choose one of {_KINDS}")
        available = {"cpu": True, "cuda": torch.cuda.is_available(),
                     "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
        if not available[device.type]:
            raise ValueError(f"device {prefer!r} is not available here; available: "
                             f"{tuple(k for k, ok in available.items() if ok)}")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {prefer!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    if verbose:
        amp = "bf16 autocast" if supports_bf16(device) else "fp32"
        print(f"device: {describe(device)} ({amp})")
    return device


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


@functools.lru_cache(maxsize=None)
def _supports_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False  # mps: autocast support varies by macOS version; fp32 is the safe default
    # bf16 autocast runs everywhere on CPU, but is only faster with native bf16 instructions
    # (AVX512-BF16 / AMX on x86, the bf16 extension on Arm): compare the bf16 and fp32 matmul peaks in
    # benchmarks/results/throughput_cpu.md ("Peak").
    if not _cpu_flags() & {"avx512_bf16", "amx_bf16", "bf16"}:
        return False
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = torch.ones(8, 8) @ torch.ones(8, 8)
        return out.dtype == torch.bfloat16 and bool((out.float() == 8).all())
    except RuntimeError:
        return False


def supports_bf16(device: str | torch.device | None = None) -> bool:
    """True where bf16 autocast is supported and worth it (CUDA with bf16, CPUs with native bf16)."""
    return _supports_bf16(_as_device(device))


def autocast(device: str | torch.device | None = None, enabled: bool = True):
    """bf16 autocast on devices that :func:`supports_bf16`, else a do-nothing context manager."""
    device = _as_device(device)
    if enabled and supports_bf16(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (all devices) random number generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def measure_peak_flops(device: str | torch.device | None = None, dtype: torch.dtype = torch.bfloat16,
                       seconds: float = 0.5) -> float:
    """One measurement of the matmul FLOP/s of ``device`` in ``dtype``: square matmuls for ~``seconds``.

    Not cached: on a shared machine each call can read differently, which is what
    :func:`peak_flops_samples` uses to tell a steady peak from a noisy one.
    """
    if not seconds > 0:
        raise ValueError(f"seconds={seconds} must be > 0")
    device = _as_device(device)
    n = 2048 if device.type == "cpu" else 8192  # 17 GFLOP per CPU matmul, 1.1 TFLOP per GPU matmul
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(2):  # warm-up: kernel selection, clocks
        a @ b
    _sync(device)
    count, start = 0, time.perf_counter()
    while True:
        for _ in range(1 if device.type == "cpu" else 10):
            a @ b
            count += 1
        _sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return 2 * n**3 * count / elapsed


@functools.lru_cache(maxsize=None)
def _peak_flops(device: torch.device, dtype: torch.dtype, seconds: float) -> float:
    return measure_peak_flops(device, dtype, seconds)


def peak_flops(device: str | torch.device | None = None, dtype: torch.dtype = torch.bfloat16,
               seconds: float = 0.5) -> float:
    """Measured matmul FLOP/s of ``device`` in ``dtype`` (square matmuls for ~``seconds``; cached).

    This is the ceiling MFU is reported against: a dense matmul is the best a model can hope for here.
    One cached reading; a benchmark that quotes MFU should use :func:`peak_flops_samples` instead.
    """
    device = _as_device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return _peak_flops(device, dtype, float(seconds))


PEAK_STEADY_SPREAD = 0.20  # (max - min) / median of the peak readings below which MFU is quoted


def peak_flops_samples(device: str | torch.device | None = None, dtype: torch.dtype = torch.bfloat16,
                       repeats: int = 3, seconds: float = 0.5) -> list[float]:
    """``repeats`` fresh readings of :func:`measure_peak_flops` (FLOP/s), one after the other."""
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be >= 1")
    return [measure_peak_flops(device, dtype, seconds) for _ in range(repeats)]


def peak_summary(samples: list[float]) -> dict:
    """Median, spread ((max - min) / median) and whether the peak is steady enough to quote MFU against.

    A peak that moves by 20% or more between readings means other jobs share the device: an MFU divided
    by it would measure the neighbours, so callers report "too noisy" instead of a number.
    """
    if not samples or min(samples) <= 0:
        raise ValueError(f"peak samples {samples} must be a non-empty list of positive FLOP/s")
    median = statistics.median(samples)
    spread = (max(samples) - min(samples)) / median
    return dict(samples=list(samples), median=median, spread=spread, steady=spread < PEAK_STEADY_SPREAD)


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed heap memory for the rest of the process (Linux with glibc; True if applied).

    By default glibc hands the top of the heap back to the OS once enough of it is free, and the next
    training step faults those pages in again: kernel time on every step, visible as page faults. With
    this, freed blocks stay in the process for reuse (no trimming; blocks up to 32 MiB come from the heap,
    the limit glibc's own adaptive rule reaches). The cost: the process keeps its peak memory until it
    exits. benchmarks/bench_throughput.py applies it (its page-fault column shows why).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))


def describe(device: str | torch.device | None = None) -> str:
    """One line naming the hardware, e.g. "cpu: AMD EPYC 9B45, 2 threads" or "cuda: NVIDIA H100 ..."."""
    device = _as_device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return f"cuda:{index}: {props.name}, {props.total_memory / 2**30:.0f} GiB"
    if device.type == "mps":
        return f"mps: Apple GPU ({platform.machine()}, {platform.processor() or 'Apple silicon'})"
    return f"cpu: {_cpu_model()}, {torch.get_num_threads()} threads"
