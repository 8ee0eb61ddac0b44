"""analysis: Fig. 8 examples, the probe at other t and depths (same protocol as run(), cached), reports."""

import dataclasses
import json

import pytest
import torch

from ldae_lite import analysis, budgets, experiment, report
from ldae_lite.recipes import LDAE, MASKED_AE, STEPS, TRAJECTORY

TINY = dataclasses.replace(budgets.get_budget("smoke"), name="tiny", steps=6, train_subset=256, probe_train=256,
                           probe_test=128, tokenizer_steps=4, cnn_steps=4, fid_samples=32, sample_steps=3,
                           probe_epochs=3, width=32, depth=2, heads=2)


@pytest.fixture(scope="module")
def shared_runs(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(autouse=True)
def runs(shared_runs, monkeypatch):
    """One runs/ folder for the module: the tiny LDAE run is trained once and probed by several tests."""
    monkeypatch.setenv("LDAE_RUNS", str(shared_runs))
    return shared_runs


def test_probe_at_t_matches_run_and_is_cached(runs, monkeypatch, capsys):
    result = experiment.run(LDAE, TINY, "digits", seed=0, progress=False)
    clean = analysis.probe_at_t(LDAE, TINY, "digits", 0, ts=(0, experiment.PROBE_T), progress=False)
    assert set(clean) == {0, experiment.PROBE_T}
    assert clean[experiment.PROBE_T] == pytest.approx(result.probe_accuracy, abs=1e-6)  # run()'s own probe
    stored = json.loads((analysis.run_folder(LDAE, TINY, "digits", 0) / "analysis.json").read_text())
    assert stored["clean_t"][str(experiment.PROBE_T)] == clean[experiment.PROBE_T]

    def no_training(*args, **kwargs):
        raise AssertionError("a cached probe must not load the model")

    monkeypatch.setattr(experiment, "load_model", no_training)
    again = analysis.probe_at_t(LDAE, TINY, "digits", 0, ts=(experiment.PROBE_T, 0), progress=True)
    assert again == clean and "reusing cached probes" in capsys.readouterr().out


def test_noisy_probe_at_t0_is_the_clean_probe(runs):
    # LDAE's schedule is linear in sigma from 0: at t = 0 there is no noise to add
    clean = analysis.probe_at_t(LDAE, TINY, "digits", 0, ts=(0,), progress=False)
    noisy = analysis.probe_at_t(LDAE, TINY, "digits", 0, ts=(0, 80), noisy=True, progress=False)
    assert noisy[0] == pytest.approx(clean[0], abs=1e-6) and 0 <= noisy[80] <= 100
    stored = json.loads((analysis.run_folder(LDAE, TINY, "digits", 0) / "analysis.json").read_text())
    assert set(stored) == {"version", "clean_t", "noisy_t"}


def test_probe_by_depth_default_depth_is_run_probe(runs):
    result = experiment.run(LDAE, TINY, "digits", seed=0, progress=False)
    accs = analysis.probe_by_depth(LDAE, TINY, "digits", 0, progress=False)
    assert list(accs) == list(range(TINY.depth + 1))
    assert accs[TINY.depth // 2] == pytest.approx(result.probe_accuracy, abs=1e-6)


def test_corrupted_cache_is_recomputed(runs):
    first = analysis.probe_by_depth(LDAE, TINY, "digits", 1, depths=(1,), progress=False)
    path = analysis.run_folder(LDAE, TINY, "digits", 1) / "analysis.json"
    path.write_text("{ not json")
    with pytest.warns(UserWarning, match="corrupted file"):
        again = analysis.probe_by_depth(LDAE, TINY, "digits", 1, depths=(1,), progress=False)
    assert again == pytest.approx(first) and json.loads(path.read_text())["depth"]["1"] == again[1]


def test_bad_t_and_depth_are_rejected():
    with pytest.raises(ValueError, match="ts=.*1000"):
        analysis.probe_at_t(LDAE, TINY, "digits", 0, ts=(1000,))
    with pytest.raises(ValueError, match="depths=.*2 blocks"):
        analysis.probe_by_depth(LDAE, TINY, "digits", 0, depths=(3,))


@pytest.mark.parametrize("key", ["patch_pca", "predict_x0", "image_input", "predict_image"])
def test_denoise_examples_shapes_and_sigma_zero(key):
    recipe = STEPS[key].recipe
    tok = experiment.get_tokenizer(recipe, TINY, "digits", 0, "cpu", progress=False)
    obj, model = experiment.build(recipe, tok, TINY)
    images = experiment.load_split("digits", "test", TINY)[0][:3]
    ex = analysis.denoise_examples(tok, obj, model, images, sigmas=(0.0, 0.5), seed=0)
    assert ex["clean"].shape == (3, 1, 32, 32) and ex["projected"].shape == (3, 1, 32, 32)
    assert ex["noisy"].shape == ex["denoised"].shape == (2, 3, 1, 32, 32)
    assert ex["ts"][0] == 0 and ex["sigmas"][1] == pytest.approx(0.5, abs=0.01)
    if obj.schedule.sigma(torch.tensor([0])).item() == 0:  # sigma_0 = 0: the noisy input is the clean projection
        assert torch.allclose(ex["noisy"][0], ex["projected"], atol=1e-5)
    assert not torch.allclose(ex["noisy"][1], ex["projected"], atol=1e-3)
    again = analysis.denoise_examples(tok, obj, model, images, sigmas=(0.0, 0.5), seed=0)
    assert torch.equal(again["noisy"], ex["noisy"])  # seeded
    fig = analysis.plot_denoising(ex, max_images=2)
    assert len(fig.axes) == 2 * 5


def test_denoise_examples_rejects_masking():
    tok = experiment.get_tokenizer(MASKED_AE, TINY, "digits", 0, "cpu", progress=False)
    obj, model = experiment.build(MASKED_AE, tok, TINY)
    with pytest.raises(ValueError, match="mask"):
        analysis.denoise_examples(tok, obj, model, torch.zeros(1, 1, 32, 32), sigmas=(0.5,))


def test_steps_to_run_uses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LDAE_RUNS", str(tmp_path))  # an empty cache
    assert [s.key for s in analysis.steps_to_run(TINY, "digits")] == ["image_output", "predict_image"]
    assert analysis.steps_to_run(TINY, "digits", run_all=True) == TRAJECTORY
    experiment.run(STEPS["patch_pca"].recipe, TINY, "digits", seed=0, progress=False)
    assert analysis.is_cached(STEPS["patch_pca"].recipe, TINY, "digits", 0)
    assert not analysis.is_cached(STEPS["patch_pca"].recipe, TINY, "digits", 0, generate=True)
    assert [s.key for s in analysis.steps_to_run(TINY, "digits")] == ["patch_pca", "image_output", "predict_image"]


def _fake_report(means, stds=None, budget="lecture"):
    steps = TRAJECTORY[-len(means):]
    rep = dict(meta=dict(budget=budget, dataset="digits", seeds=[0], device="cpu", torch="x", commit="abc",
                         created="now", wall_seconds=60.0, command=""), raw_pixels=dict(linear=80.0, knn=81.0),
               steps=[])
    prev = None
    for i, (s, m) in enumerate(zip(steps, means)):
        row = dict(key=s.key, label=s.label, legitimate=s.legitimate, paper=s.paper_accuracy, mean=m,
                   std=None if stds is None else stds[i], accuracies=[m], train_seconds=10.0, cached=True)
        if prev is not None:
            row["delta"], row["paper_delta"] = m - prev["mean"], s.paper_accuracy - prev["paper"]
            row["same_sign"] = None if row["paper_delta"] == 0 else row["delta"] * row["paper_delta"] > 0
            row["within_noise"] = None
        rep["steps"].append(row)
        prev = row
    return rep


def test_summary_reads_the_numbers():
    # last 5 steps; paper: 62.4, 63.6, 63.6, 63.9, 64.5 (deltas -2.7 from patch_pca, +1.2, 0, +0.3, +0.6)
    rep = _fake_report([85.0, 84.0, 84.5, 84.7, 84.6, 85.2])
    text = analysis.reproduction_summary(rep)
    assert "**3 of 4**" in text and "**1**" in text and "image_output" in text  # image_output went down
    assert "no change" in text and "+0.20" in text  # image_input: paper 0.0, ours +0.2
    assert "Stage 3" in text and "ours +0.20, paper -0.6" in text
    assert "raw pixels (+5.20)" in text and "no error bar" in text
    md = analysis.trajectory_markdown(rep)
    assert md.count("\n") == 2 + 6 and "**no**" in md
    lines = md.splitlines()
    assert "(paper: 0)" not in lines[2] and "(paper: 0)" in lines[5]  # first row: nothing to compare; row 4: 0.0


def test_summary_of_a_live_tiny_report(runs):
    rep = report.trajectory(TINY, "digits", steps=TRAJECTORY[-2:], generate=False, progress=False)
    text = analysis.reproduction_summary(rep)
    assert "2 of the 13 steps" in text and "previous one *shown*" in text
    assert "budget `tiny`" in analysis.describe_report(rep, "somewhere.json")


def test_find_reports(tmp_path):
    folder = tmp_path / "results" / "sub"
    folder.mkdir(parents=True)
    for budget in ("smoke", "full"):
        experiment.write_json(folder / f"trajectory_digits_{budget}.json", _fake_report([1.0, 2.0], budget=budget))
    (folder / "trajectory_digits_broken.json").write_text("{}")
    (folder / "trajectory_other_full.json").write_text("{}")
    longer = _fake_report([1.0, 2.0], budget="full")
    longer["meta"]["overrides"] = {"steps": 9000}
    experiment.write_json(folder / "trajectory_digits_full_steps9000.json", longer)  # sorts before "full.json"
    found = analysis.find_reports("digits", folders=[tmp_path / "results", tmp_path / "missing"])
    assert [(p.name, rep["meta"]["budget"]) for p, rep in found] == [
        ("trajectory_digits_full.json", "full"), ("trajectory_digits_full_steps9000.json", "full"),
        ("trajectory_digits_smoke.json", "smoke")]


def test_rank_correlation_and_table():
    assert analysis.rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert analysis.rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert analysis.rank_correlation([1, 2], [1, 2]) is None
    assert analysis.rank_correlation([1, 1, 1], [1, 2, 3]) is None
    md = analysis.markdown_table(["a", "b"], [[1.234, None], ["x", 2]])
    assert md.splitlines() == ["| a | b |", "|---|---|", "| 1.23 | – |", "| x | 2 |"]


def test_best_report_prefers_complete_then_larger_budget():
    full_partial = _fake_report([1.0, 2.0], budget="full")
    smoke_complete = _fake_report([1.0] * 13, budget="smoke")
    lecture_complete = _fake_report([1.0] * 13, budget="lecture")
    assert analysis.best_report([("a", full_partial), ("b", smoke_complete)])[0] == "b"
    assert analysis.best_report([("b", smoke_complete), ("c", lecture_complete)])[0] == "c"
    assert analysis.best_report([("a", full_partial)])[0] == "a"
    longer = _fake_report([1.0] * 13, budget="lecture")
    longer["meta"]["overrides"] = {"steps": 1200}  # `--train-steps 1200`: read after the preset itself
    assert analysis.best_report([("d", longer), ("c", lecture_complete)])[0] == "c"
    with pytest.raises(ValueError):
        analysis.best_report([])


def test_within_noise_is_two_standard_errors_of_the_difference_of_means():
    # seeds' std 0.3 and 0.4 over 3 seeds each: SE of the difference sqrt((0.09 + 0.16) / 3) = 0.289
    assert report.noise_bar(0.3, 0.4, 3) == pytest.approx(2 * (0.25 / 3) ** 0.5)
    assert report.noise_bar(None, 0.4, 3) is None  # one seed: no spread to compare against


def test_versus_raw_pixels_table():
    full = _fake_report([60.0 + i for i in range(13)], stds=[0.5] * 13)  # raw pixels 80.0, l-DAE 72.0
    part = _fake_report([85.0, 86.5])  # only the last two steps: no first legitimate step
    md = analysis.versus_raw_pixels([("a", full), ("b", part)])
    lines = md.splitlines()
    assert len(lines) == 4 and "l-DAE − raw pixels" in lines[0]
    assert "| 62.00 ± 0.50 | 72.00 ± 0.50 | -8.00 |" in lines[2]  # step 3 is the first legitimate one
    assert lines[3].endswith("| – | 86.50 | +6.50 |")


def test_between_class_share():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(400) % 4
    noise = torch.randn(400, 3, 5, generator=g)
    assert analysis.between_class_share(noise, labels) < 3  # labels that say nothing about z0
    separated = noise * 0.01 + labels.view(-1, 1, 1).float()
    assert analysis.between_class_share(separated, labels) > 99  # the class means are everything
    half = torch.cat([noise[:, :1] * 0.0 + labels.view(-1, 1, 1).float() - 1.5, noise[:, 1:2]], 1)
    assert 40 < analysis.between_class_share(half, labels) < 60  # equal variance from class and from noise
    with pytest.raises(ValueError, match="same number"):
        analysis.between_class_share(noise, labels[:10])


def test_label_use_of_a_class_conditional_run(runs):
    baseline = TRAJECTORY[0].recipe
    use = analysis.label_use(baseline, TINY, "digits", 0, ts=(100, 800), n=64)
    assert use["t"] == [100, 800] and all(len(use[k]) == 2 for k in ("true", "null", "wrong", "gain"))
    for true, null, gain in zip(use["true"], use["null"], use["gain"]):
        assert gain == pytest.approx(100 * (1 - true / null))
    assert use["true"] != use["wrong"]  # a wrong label changes the network's answer
    assert 0 <= use["pure_noise"] <= 100
    with pytest.raises(ValueError, match="class-conditional"):
        analysis.label_use(LDAE, TINY, "digits", 0)
    with pytest.raises(ValueError, match=r"ts=\[1000\]"):
        analysis.label_use(baseline, TINY, "digits", 0, ts=(1000,))


def test_reference_levers_reads_the_shipped_table(tmp_path):
    meta, rows = analysis.reference_levers("label")
    assert meta["budget"] == "lecture" and "scripts/levers.py" in meta["command"]
    assert rows and all(r["group"] == "label" for r in rows)
    assert {r["dataset"] for r in rows} == {"fashion-mnist", "fashion-mnist-m"}
    text = analysis.levers_markdown(meta, rows)
    assert meta["commit"] in text and f"{rows[0]['accuracy']:.2f}" in text
    with pytest.raises(ValueError, match="group='nope'.*its groups are"):
        analysis.reference_levers("nope")
    assert analysis.reference_levers("label", folder=tmp_path) is None  # no table there


def test_changes_side_by_side():
    # all 13 steps, each 1 point above the last: the paper's sign wherever its change is positive
    up = _fake_report([60.0 + i for i in range(13)])
    for r in up["steps"][1:]:
        r["within_noise"] = False
    part = _fake_report([85.0, 84.0])  # steps 12 and 13 only: one change, into step 13
    lines = analysis.changes_side_by_side([("up", up), ("part", part)]).splitlines()
    assert lines[0] == "| # | step | Δ paper | Δ up | Δ part |" and len(lines) == 2 + 12 + 1
    assert lines[2].startswith("| 2 | remove class conditioning | +5.0 | +1.00 (paper's sign, beyond noise) | – |")
    assert "| -4.1 | +1.00 (opposite sign, beyond noise) |" in lines[3]  # step 3: the paper lost 4.1
    assert "(paper: 0, beyond noise)" in lines[11]  # step 11: the paper's change is 0.0
    assert lines[13].endswith("| -1.00 (opposite sign) |")  # paper +0.6; no std: no noise verdict
    part["meta"]["overrides"] = {"steps": 1200}
    assert analysis.report_training(up) == "300 steps" and analysis.report_training(part) == "1200 steps"
    positive = sum(1 for a, b in zip(TRAJECTORY, TRAJECTORY[1:]) if b.paper_accuracy > a.paper_accuracy)
    assert lines[-1] == f"|  | paper's sign and beyond noise |  | {positive} of 11 | 0 of 1 |"


def test_levers_changes_and_change_summary():
    meta = dict(budget="lecture", device="cpu", commit="abc", created="now", command="python scripts/levers.py",
                changes=[dict(group="4x", change="predict clean data", dataset="d", training="1200 steps",
                              before=[65.0, 66.0, 65.5], after=[64.0, 64.5, 64.0]),
                         dict(group="label", change="remove class conditioning", dataset="d",
                              training="300 steps", before=[60.0], after=[59.2])])
    text = analysis.levers_changes(meta)
    assert "- predict clean data, d, 1200 steps: -1.33 ± 0.29 (3 seeds: 65.50 ± 0.50 -> 64.17 ± 0.29); " \
           "beyond noise (two standard errors: 0.67)" in text
    assert "remove class conditioning, d, 300 steps: -0.80 (one seed: 60.00 -> 59.20)" in text
    assert "class conditioning" not in analysis.levers_changes(meta, {"4x"})
    assert analysis.levers_changes(meta, {"probe"}) == ""
    rows = [dict(group="4x", dataset="d", what="x", accuracy=64.0, note="")]
    assert "predict clean data" in analysis.levers_markdown(meta, rows)
