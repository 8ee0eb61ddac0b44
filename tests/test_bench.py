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


pytestmark = pytest.mark.usefixtures("one_thread")


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


def test_candidates_measure_and_table():
    cfg = bench.CONFIGS["smoke"]
    device = torch.device("cpu")
    batch = cfg.batch_size(device)
    cands = bench.build_candidates(cfg, device)
    assert [c.name for c in cands] == ["ours (DiT)", "timm ViT", "timm ViT"]
    assert [c.attention.split()[0] for c in cands] == ["math", "math", "default"]
    bench.measure(cands, batch, device, seconds=1e-3, repeats=2, warmup=1)
    rows = bench.summarise(cfg, cands, batch, peak=1e12)
    assert len(rows) == 3 and all(len(r["img_per_s_all"]) == 2 and r["img_per_s"] > 0 for r in rows)
    assert all(0 < r["mfu"] and r["steps_per_window"] >= 1 for r in rows)
    assert {"speed_vs_timm_math", "speed_vs_timm_default"} <= set(rows[0])
    table = bench.to_markdown(rows)
    assert table.count("| smoke (64x2, 2 heads) |") == 3 and "ours / timm" in table


def test_main_writes_json(tmp_path, capsys):
    out = tmp_path / "throughput_cpu.json"
    assert bench.main(["--device", "cpu", "--configs", "smoke", "--seconds", "0.001", "--repeats", "1",
                       "--out", str(out), "--no-timm"]) == 0
    report = json.loads(out.read_text())
    assert report["meta"]["device_kind"] == "cpu" and report["meta"]["torch"] == torch.__version__
    assert "--no-timm" in report["meta"]["command"]
    assert [r["model"] for r in report["rows"]] == ["ours (DiT)"]
    assert "| smoke" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write left no temporary file


@pytest.mark.parametrize("argv", [["--repeats", "0"], ["--seconds", "-1"]])
def test_bad_arguments(argv):
    with pytest.raises(ValueError, match="repeats"):
        bench.main(["--device", "cpu", "--configs", "smoke", *argv])
