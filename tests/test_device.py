"""Device selection, bf16 autocast, seeding, the measured peak (and its steadiness), the description."""

import contextlib
import random

import numpy as np
import pytest
import torch

from ldae_lite import device as dev


def test_cpu_is_always_available(capsys):
    d = dev.get_device("cpu")
    assert d == torch.device("cpu")
    assert "device: cpu:" in capsys.readouterr().out
    assert dev.get_device("cpu", verbose=False) == d and capsys.readouterr().out == ""


def test_default_follows_environment(monkeypatch):
    monkeypatch.setenv("LDAE_DEVICE", "cpu")
    assert dev.get_device(verbose=False).type == "cpu"
    monkeypatch.delenv("LDAE_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else None
    assert dev.get_device(verbose=False).type in ({expected} if expected else {"mps", "cpu"})


@pytest.mark.parametrize("name", ["tpu", "gpu", "xla"])
def test_unknown_device(name):
    with pytest.raises(ValueError, match="cuda.*mps.*cpu"):
        dev.get_device(name, verbose=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_cuda():
    with pytest.raises(ValueError, match="not available"):
        dev.get_device("cuda", verbose=False)


def test_autocast_on_cpu():
    cpu = torch.device("cpu")
    ctx = dev.autocast(cpu)
    a, b = torch.randn(16, 16), torch.randn(16, 16)
    with ctx:
        out = a @ b
    assert out.dtype == (torch.bfloat16 if dev.supports_bf16(cpu) else torch.float32)
    assert isinstance(dev.autocast(cpu, enabled=False), contextlib.nullcontext)
    with dev.autocast(cpu, enabled=False):
        assert (a @ b).dtype == torch.float32


def test_seed_everything():
    dev.seed_everything(3)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    dev.seed_everything(3)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_peak_flops_measured_and_cached():
    cpu = torch.device("cpu")
    flops = dev.peak_flops(cpu, torch.float32, seconds=0.05)
    assert 1e8 < flops < 1e14  # a real measurement: between 0.1 GFLOP/s and 100 TFLOP/s
    assert dev.peak_flops("cpu", torch.float32, seconds=0.05) == flops  # cached per device and dtype


def test_peak_readings_are_fresh_and_summarised():
    samples = dev.peak_flops_samples("cpu", torch.float32, repeats=3, seconds=0.02)
    assert len(samples) == 3 and all(1e8 < x < 1e14 for x in samples)
    assert dev.measure_peak_flops("cpu", torch.float32, seconds=0.02) > 0  # uncached: a new reading each call
    summary = dev.peak_summary(samples)
    assert summary["samples"] == samples and min(samples) <= summary["median"] <= max(samples)
    assert summary["spread"] == pytest.approx((max(samples) - min(samples)) / summary["median"])
    steady = dev.peak_summary([1.0, 1.1, 0.95])
    noisy = dev.peak_summary([1.0, 1.3, 0.9])
    assert steady["steady"] and not noisy["steady"]  # 15% against 40% spread, the line at 20%
    assert dev.peak_summary([1.0, 1.0, 1.19])["steady"] and not dev.peak_summary([1.0, 1.0, 1.21])["steady"]


@pytest.mark.parametrize("call, match", [
    (lambda: dev.peak_summary([]), "non-empty"),
    (lambda: dev.peak_summary([1.0, 0.0]), "positive"),
    (lambda: dev.peak_flops_samples("cpu", repeats=0), "repeats=0"),
    (lambda: dev.measure_peak_flops("cpu", seconds=0), "seconds=0"),
])
def test_peak_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_keep_freed_memory_is_safe_to_call():
    import platform

    applied = dev.keep_freed_memory()  # idempotent; the test process just keeps its freed memory
    assert applied == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


def test_describe():
    text = dev.describe("cpu")
    assert text.startswith("cpu: ") and text.endswith(f"{torch.get_num_threads()} threads")
    if torch.cuda.is_available():
        assert dev.describe("cuda").startswith("cuda:")
