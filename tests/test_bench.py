"""The throughput benchmark runs end to end on a tiny config (so it cannot rot); no timing assertions."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from ldae_lite.models import DiT

pytest.importorskip("timm")
PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_throughput.py"
spec = importlib.util.spec_from_file_location("bench_throughput", PATH)
bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench  # dataclasses look their module up there
spec.loader.exec_module(bench)
report_md = bench.throughput_report

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = ["--device", "cpu", "--configs", "smoke", "--seconds", "0.001", "--peak-seconds", "0.01", "--no-kernels"]


@pytest.mark.parametrize("width,depth,heads", [(64, 2, 2), (96, 3, 3), (192, 6, 3)])
def test_timm_flops_match_the_analytic_vit_count(width, depth, heads):
    from timm.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(img_size=32, patch_size=8, in_chans=1, num_classes=64, global_pool="",
                            class_token=False, embed_dim=width, depth=depth, num_heads=heads)
    L, W = 16, width
    per_token = 64 * W + depth * (4 * W * W + 2 * W * 4 * W) + W * 64  # patch embed, blocks, head
    expected = 3 * (2 * per_token * L + depth * 4 * L * L * W)
    assert bench.vit_flops_per_image(vit, L, W, depth) == expected
    # ours counts the same per-token matmuls plus its per-image t-MLP and adaLN: a few % more
    ours = DiT(64, 16, width=width, depth=depth, heads=heads).flops_per_image()
    assert expected < ours < 1.1 * expected


def _measured_smoke(repeats=3):
    cfg = bench.CONFIGS["smoke"]
    device = torch.device("cpu")
    batch = cfg.batch_size(device)
    cands = bench.build_candidates(cfg, device)
    bench.measure(cands, batch, device, seconds=1e-3, repeats=repeats, warmup=1)
    return cfg, cands, batch


def test_candidates_measure_and_paired_ratios():
    cfg, cands, batch = _measured_smoke()
    assert [c.name for c in cands] == [bench.OURS, bench.TIMM, bench.TIMM]
    assert [c.attention.split()[0] for c in cands] == ["math", "math", "default"]
    for c in cands:  # one entry per round, for every measure a window records
        assert len(c.img_per_s) == len(c.cpu_ms_per_step) == len(c.faults_per_step) == 3
        assert all(x > 0 for x in c.img_per_s) and c.steps_per_window >= 1
    ratios = bench.paired_ratios(cands[0], cands[1])
    assert ratios == [a / b for a, b in zip(cands[0].img_per_s, cands[1].img_per_s)]
    s = bench.summarise(cfg, cands, batch, bench.TOKENS)
    same = [q for q in s["ratios"] if q["same_backend"]]
    assert len(s["ratios"]) == 2 and len(same) == 1 and "math" in same[0]["against"]
    assert same[0]["min"] <= same[0]["median"] <= same[0]["max"] and same[0]["rounds"] == ratios
    assert same[0]["equal_work_median"] == pytest.approx(same[0]["median"] * same[0]["flops_ratio"])
    assert 1 < same[0]["flops_ratio"] < 1.1  # ours' adaLN and t-MLP FLOPs on top of the same transformer
    assert 0 <= same[0]["quiet_rounds"] <= 3 and (same[0]["quiet_median"] is None) == (same[0]["quiet_rounds"] == 0)
    assert len(cands[0].background_cpus) == 3  # Linux: /proc/stat
    assert all(r["mfu"] is None for r in s["rows"])  # no peak applied yet


def _peak(samples):
    from ldae_lite import device as dev

    return dev.peak_summary(samples)


def test_mfu_only_against_a_steady_peak():
    cfg, cands, batch = _measured_smoke(repeats=1)
    steady, noisy = bench.summarise(cfg, cands, batch, bench.TOKENS), bench.summarise(cfg, cands, batch, bench.TOKENS)
    bench.apply_peak([steady], _peak([1.0e12, 1.05e12, 0.98e12]))
    bench.apply_peak([noisy], _peak([1.0e12, 0.5e12, 1.0e12]))
    assert all(r["mfu"] == pytest.approx(r["tflop_per_s"]) for r in steady["rows"])  # peak median 1 TFLOP/s
    assert all(r["mfu"] is None for r in noisy["rows"])
    md = report_md.config_markdown(noisy)
    assert md[0].startswith("### smoke") and sum("| n/a |" in line for line in md) == 3
    lines = report_md.peak_markdown({"bf16": noisy["peak"]}, "bf16")
    assert "too noisy" in lines[0] and "MFU is not quoted" in lines[0]


def test_main_writes_a_complete_json_and_markdown(tmp_path, capsys):
    out = tmp_path / "throughput_cpu.json"
    assert bench.main(FAST + ["--repeats", "2", "--profile", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    meta = report["meta"]
    assert meta["device_kind"] == "cpu" and meta["torch"] == torch.__version__ and meta["timm"]
    assert meta["command"].startswith("benchmarks/bench_throughput.py") and "--profile" in meta["command"]
    assert meta["commit"] and meta["created"] and meta["machine"] and meta["load_after"]
    assert set(report["peaks"]) >= {meta["autocast"]}
    assert len(report["peaks"][meta["autocast"]]["samples"]) == 6  # before the size, then after the last
    (config,) = report["configs"]
    assert config["config"] == "smoke" and len(config["profile"]) > 0
    assert {"op", "ours_ms", "timm_ms"} <= set(config["profile"][0])
    md = out.with_suffix(".md").read_text()
    assert md == report["markdown"] and "ours / timm = **" in md and "| `" in md
    assert "bench_throughput.py" in md and meta["commit"] in md
    assert "ours / timm" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.tmp"))  # the atomic writes left no temporary file


def test_main_without_timm_says_so(tmp_path):
    out = tmp_path / "alone.json"
    assert bench.main(FAST + ["--repeats", "1", "--no-timm", "--allocator", "default", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [r["model"] for r in report["configs"][0]["rows"]] == [bench.OURS]
    assert report["meta"]["allocator"] == "default" and "timm was not timed" in report["markdown"]


@pytest.mark.parametrize("argv, match", [(["--repeats", "0"], "repeats=0"), (["--seconds", "-1"], "seconds=-1"),
                                         (["--threads", "0"], "threads=0"), (["--profile", "-2"], "profile=-2"),
                                         (["--peak-seconds", "0"], "peak-seconds=0")])
def test_bad_arguments(argv, match):
    with pytest.raises(ValueError, match=match):
        bench.main(["--device", "cpu", "--configs", "smoke", *argv])


def test_environment_helpers():
    common = bench.bench_common
    assert common.git_commit()  # a hash (maybe flagged) or "unknown", never empty
    assert common.load_average()
    busy = common.cpu_busy_seconds()
    assert busy is None or busy > 0  # None off Linux


def test_kernel_choices_run_and_write(tmp_path):
    kernels = bench.bench_kernels
    result = kernels.run(torch.device("cpu"), rounds=2, seconds=1e-3, batch=4, width=32, heads=2)
    assert [r["piece"] for r in result["rows"]] == ["LayerNorm, no affine", "adaLN modulate",
                                                    "adaLN modulate, fused", "gated residual", "GELU",
                                                    "attention (SDPA)"]
    for r in result["rows"]:
        assert r["chosen_ms"] > 0 and r["other_ms"] > 0 and len(r["rounds"]) == 2
        assert r["ratio_min"] <= r["ratio"] <= r["ratio_max"]
    out = kernels.write(torch.device("cpu"), result, ["--test"], tmp_path / "kernels_cpu.json")
    md = out.with_suffix(".md").read_text()
    assert json.loads(out.read_text())["markdown"] == md and "| GELU | exact (erf) |" in md
    meta = dict(json.loads(out.read_text())["meta"], commit="abc123", command="benchmarks/x.py (its kernel section)")
    again = kernels.write(torch.device("cpu"), result, [], tmp_path / "k2.json", meta)
    assert "commit abc123" in again.with_suffix(".md").read_text()  # the caller's meta, read before the run
    with pytest.raises(ValueError, match="rounds=0"):
        kernels.main(["--device", "cpu", "--rounds", "0"])


def test_device_dependent_choices_without_the_device():
    # the CUDA branches, checked on any machine: torch.device("cuda") needs no GPU to exist
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    ours, timm = bench.attention_backends(cpu)
    assert ours.startswith("math") and [label for label, _ in timm] == ["math (pinned)", "default"]
    ours, timm = bench.attention_backends(cuda)
    assert ours == "default" and timm == [("default", None)]
    assert bench.CONFIGS["full"].batch_size(cuda) == 512 and bench.CONFIGS["full"].batch_size(cpu) == 128
    a, b = object(), object()
    assert bench.bench_kernels.attention_choice(cpu, a, b)[2:] == (a, b)
    assert bench.bench_kernels.attention_choice(cuda, a, b)[2:] == (b, a)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_end_to_end(tmp_path):
    out = tmp_path / "throughput_cuda.json"
    assert bench.main(["--device", "cuda", "--configs", "smoke", "--seconds", "0.01", "--repeats", "2",
                       "--peak-seconds", "0.05", "--profile", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    (config,) = report["configs"]
    assert [r["attention"] for r in config["rows"]] == ["default", "default"]
    assert config["rows"][0]["peak_mem_mib"] > 0 and config["ratios"][0]["same_backend"]
    assert (tmp_path / "kernels_cuda.md").exists()


def test_baseline_revision_is_timed_beside_ours(tmp_path):
    out = tmp_path / "b.json"
    assert bench.main(FAST + ["--repeats", "1", "--baseline", "HEAD", "--out", str(out)]) == 0
    (config,) = json.loads(out.read_text())["configs"]
    assert [r["model"] for r in config["rows"]][-1] == f"{bench.OURS} @ HEAD"
    (base,) = [q for q in config["ratios"] if q["baseline"]]
    assert not base["same_backend"] and base["median"] > 0 and base["flops_ratio"] == 1.0
    assert [q["against"] for q in config["ratios"] if q["same_backend"]] == ["timm ViT [math (pinned)]"]
    assert "speed-up over that revision" in json.loads(out.read_text())["markdown"]
    with pytest.raises(ValueError, match="no-such-rev"):
        bench.main(FAST + ["--baseline", "no-such-rev", "--out", str(out)])
