"""live: a notebook's live number beside the shipped reference (same dataset and budget) beside the paper,
with one line saying whether it falls inside the reference's spread; and side experiments read from the
shipped levers table instead of trained."""

import dataclasses
import json

import pytest

from ldae_lite import budgets, live
from ldae_lite.budgets import get_budget
from ldae_lite.experiment import Result
from ldae_lite.recipes import STEPS, TRAJECTORY


def write_report(folder, accuracies, dataset="digits", budget="lecture", overrides=None, seeds=(0, 1, 2)):
    """A trajectory report of all 13 steps, step i (0-based) probing accuracies[i] (one per seed), written
    where find_reports looks for it. Returns its path."""
    steps, prev = [], None
    for s, accs in zip(TRAJECTORY, accuracies):
        mean = sum(accs) / len(accs)
        std = (sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) ** 0.5 if len(accs) > 1 else None
        row = dict(key=s.key, label=s.label, legitimate=s.legitimate, paper=s.paper_accuracy, accuracies=list(accs),
                   mean=mean, std=std, knn=0.0, frechet=None, train_seconds=1.0, cached=False)
        if prev is not None:
            row.update(delta=mean - prev["mean"], paper_delta=s.paper_accuracy - prev["paper"], within_noise=True)
        steps.append(row)
        prev = row
    meta = dict(budget=budget, dataset=dataset, seeds=list(seeds), device="cpu", torch="x", commit="abc",
                created="now", wall_seconds=1.0, command="")
    stem = f"trajectory_{dataset}_{budget}"
    if overrides:
        meta.update(overrides=overrides, label=f"{budget}, " + ", ".join(f"{k}={v}" for k, v in overrides.items()))
        stem += "_" + "_".join(f"{k}{v}" for k, v in overrides.items())
    path = folder / budget / f"{stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(meta=meta, raw_pixels=dict(linear=50.0, knn=50.0), steps=steps)))
    return path


# step 1: 60, 61, 62 (mean 61, std 1); step 2: 62, 64, 63 (mean 63, std 1): per-seed changes 2, 3, 1
ACCURACIES = [[60.0, 61.0, 62.0], [62.0, 64.0, 63.0]] + [[70.0, 70.0, 70.0]] * 11


def result(key, accuracy, seed=0, dataset="digits", budget="lecture"):
    return Result(key="k", recipe=dataclasses.asdict(STEPS[key].recipe), budget=budget, dataset=dataset, seed=seed,
                  probe_accuracy=accuracy, knn_accuracy=0.0, train_seconds=0.0, probe_seconds=0.0, images_per_s=0.0,
                  device="cpu", final_loss=0.0)


def test_one_live_number_beside_a_synthetic_reference(tmp_path):
    write_report(tmp_path, ACCURACIES)
    text = live.beside_reference("no_class_cond", 62.5, "lecture", "digits", folders=[tmp_path])
    assert text.startswith("**Step 2, remove class conditioning** (budget `lecture`, dataset `digits`)")
    assert "- live: 62.50 %\n" in text
    assert "- reference: 63.00 ± 1.00 % over seeds 0, 1, 2" in text and "change from step 1: +2.00" in text
    assert "- paper: 62.5 %; change from step 1: +5.0\n" in text
    assert "**inside** the reference's spread: the live run (62.50) lies within the reference's mean ± 2 std " \
           "over its seeds (61.00 to 65.00, 3 seeds)" in text
    below = live.beside_reference("no_class_cond", 60.9, "lecture", "digits", folders=[tmp_path])
    assert "**outside**" in below and "lies below" in below and "more than the seed alone usually moves it" in below
    first = live.beside_reference("dit_baseline", 61.0, get_budget("lecture"), "digits", folders=[tmp_path])
    assert "change from step" not in first  # the first step has no step before it


def test_several_live_seeds_use_two_standard_errors(tmp_path):
    write_report(tmp_path, ACCURACIES)
    text = live.beside_reference("no_class_cond", [65.0, 66.0, 64.0], "lecture", "digits", folders=[tmp_path])
    # live 65 ± 1, reference 63 ± 1, three seeds each: two standard errors 2 sqrt(2/3) = 1.63 < 2
    assert "- live: 65.00 ± 1.00 %" in text
    assert "**outside** the reference's spread: the mean of the 3 live seeds differs from the reference's by " \
           "+2.00, beyond two standard errors of the difference (1.63)" in text
    close = live.beside_reference("no_class_cond", [64.0, 63.0], "lecture", "digits", folders=[tmp_path])
    assert "**inside**" in close


def test_results_are_checked_and_their_seeds_named(tmp_path):
    write_report(tmp_path, ACCURACIES)
    text = live.beside_reference("no_class_cond", result("no_class_cond", 62.5, seed=1), "lecture", "digits",
                                 folders=[tmp_path])
    assert "- live: 62.50 % (seed 1; the reference's seed 1: 64.00)" in text
    with pytest.raises(ValueError, match="on dataset 'cifar10'.*pass dataset='cifar10'"):
        live.beside_reference("no_class_cond", result("no_class_cond", 60.0, dataset="cifar10"), "lecture", "digits")
    with pytest.raises(ValueError, match="at budget 'smoke'"):
        live.beside_reference("no_class_cond", result("no_class_cond", 60.0, budget="smoke"), "lecture", "digits")
    with pytest.raises(ValueError, match=r"not step 'no_class_cond''s: it differs in \['class_cond'\]"):
        live.beside_reference("no_class_cond", result("dit_baseline", 60.0), "lecture", "digits")
    with pytest.raises(ValueError, match=r"repeat seeds \[0\]"):
        live.beside_reference("no_class_cond", [result("no_class_cond", 60.0)] * 2, "lecture", "digits")


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="unknown trajectory step 'nope'"):
        live.beside_reference("nope", 60.0, "lecture", "digits")
    with pytest.raises(ValueError, match=r"live accuracy 150.0 must be a percentage in \[0, 100\]"):
        live.beside_reference("no_class_cond", 150.0, "lecture", "digits")
    with pytest.raises(ValueError, match="live='high': expected a probe accuracy"):
        live.beside_reference("no_class_cond", "high", "lecture", "digits")
    with pytest.raises(ValueError, match=r"live=\[\]"):
        live.beside_reference("no_class_cond", [], "lecture", "digits")
    with pytest.raises(ValueError, match="unknown budget 'huge'"):
        live.beside_reference("no_class_cond", 60.0, "huge", "digits")
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        live.beside_reference("no_class_cond", 60.0, "lecture", "mnist")


def test_no_reference_for_this_budget_or_dataset(tmp_path):
    write_report(tmp_path, ACCURACIES)
    smoke = live.beside_reference("no_class_cond", 30.0, "smoke", "digits", folders=[tmp_path])
    assert "- live: 30.00 %" in smoke and "- paper: 62.5 %" in smoke and "inside" not in smoke
    assert ("**no reference**: no shipped reference for budget `smoke` on `digits` (shipped for it: `lecture`); "
            "run at `LDAE_BUDGET=lecture` to compare") in smoke
    other = live.beside_reference("no_class_cond", 30.0, "lecture", "cifar10", folders=[tmp_path])
    assert "no shipped reference for `cifar10` at any budget (shipped for: `digits`" in other


def test_a_preset_budget_reads_the_preset_report_an_overridden_one_its_own(tmp_path):
    preset = write_report(tmp_path, ACCURACIES)
    longer = write_report(tmp_path, [[80.0, 81.0, 82.0]] * 13, overrides={"steps": 4800})
    assert live.reference_report("digits", "lecture", [tmp_path])[0] == preset
    budget = dataclasses.replace(get_budget("lecture"), steps=4800)
    assert live.reference_report("digits", budget, [tmp_path])[0] == longer
    assert "81.00 ± 1.00" in live.beside_reference("no_class_cond", 81.0, budget, "digits", folders=[tmp_path])
    assert live.reference_report("digits", dataclasses.replace(budget, steps=600), [tmp_path]) is None


def test_a_change_beside_the_reference_change(tmp_path):
    write_report(tmp_path, ACCURACIES)
    text = live.change_beside_reference("dit_baseline", "no_class_cond", 61.0, 61.5, "lecture", "digits",
                                        folders=[tmp_path])
    assert text.startswith("**Step 1 → step 2: remove class conditioning**")
    assert "- live change: +0.50 (61.00 → 61.50 %)" in text
    assert "- reference change (" in text and "+2.00 ± 1.00 (3 seeds: 61.00 ± 1.00 -> 63.00 ± 1.00)" in text
    assert "- paper change: +5.0 (57.5 → 62.5 %)" in text
    # per-seed changes 2, 3, 1: mean ± 2 std = 0 to 4
    assert "**inside** the reference's spread: the live change (+0.50) lies within the reference's mean ± 2 std " \
           "over its per-seed changes (+0.00 to +4.00, 3 seeds)" in text
    paired = live.change_beside_reference(
        "dit_baseline", "no_class_cond", [result("dit_baseline", 60.0, s) for s in (0, 1)],
        [result("no_class_cond", 66.0, s) for s in (0, 1)], "lecture", "digits", folders=[tmp_path])
    assert "- live change: +6.00 ± 0.00 (60.00 ± 0.00 → 66.00 ± 0.00 %, seeds 0, 1)" in paired
    assert "**outside**" in paired
    smoke = live.change_beside_reference("dit_baseline", "no_class_cond", 20.0, 21.0, "smoke", "digits",
                                         folders=[tmp_path])
    assert "**no reference**" in smoke and "- paper change: +5.0" in smoke


def test_a_notebook_that_trains_some_steps(tmp_path):
    write_report(tmp_path, ACCURACIES)
    results = {"dit_baseline": result("dit_baseline", 61.0), "no_class_cond": result("no_class_cond", 61.5)}
    both = live.step_markdown("dit_baseline", "no_class_cond", results, "lecture", "digits", folders=[tmp_path])
    assert both.startswith("**Step 1 → step 2") and "- live change: +0.50" in both
    only = live.step_markdown("dit_baseline", "no_class_cond", {"no_class_cond": results["no_class_cond"]},
                              "lecture", "digits", folders=[tmp_path])
    assert only.startswith("**Step 2, remove class conditioning** (budget") and "- live: 61.50 %" in only
    shipped = live.step_markdown("dit_baseline", "no_class_cond", {}, "lecture", "digits", flag="LIVE",
                                 folders=[tmp_path])
    assert shipped.startswith("**Step 2, remove class conditioning: shipped, not trained here** (`LIVE = False`")
    assert "reference change from step 1: +2.00 ± 1.00" in shipped
    keys = ["dit_baseline", "no_class_cond", "no_perceptual"]
    ours = live.live_or_shipped(keys, {"no_class_cond": results["no_class_cond"]}, "lecture", "digits", [tmp_path])
    assert ours == {"dit_baseline": 61.0, "no_class_cond": 61.5, "no_perceptual": 70.0}  # shipped, live, shipped
    assert live.live_or_shipped(keys, {}, "smoke", "digits", [tmp_path]) == {}  # no reference at smoke


def test_a_change_needs_ordered_steps_and_the_same_seeds():
    with pytest.raises(ValueError, match="before_key='no_class_cond' \\(step 2\\) must come before"):
        live.change_beside_reference("no_class_cond", "dit_baseline", 60.0, 61.0, "lecture", "digits")
    with pytest.raises(ValueError, match="the same seeds"):
        live.change_beside_reference("dit_baseline", "no_class_cond", result("dit_baseline", 60.0, 0),
                                     result("no_class_cond", 60.0, 1), "lecture", "digits")


def test_the_shipped_reference():
    # the reference made when the lecture preset was 300 steps of 256: a budget with those overrides reads it
    old = budgets.with_settings(get_budget("lecture"), ["steps=300", "batch_size=256"])
    text = live.beside_reference("no_class_cond", 60.12, old, "fashion-mnist-m")
    shipped = "`results/lecture/trajectory_fashion-mnist-m_lecture_steps300_batch_size256.json`"
    assert f"- reference: 60.48 ± 1.20 % over seeds 0, 1, 2 ({shipped})" in text
    assert "change from step 1: -0.03 (within noise)" in text
    assert "**inside**" in text and "(58.09 to 62.87, 3 seeds)" in text
    change = live.change_beside_reference("no_adversarial", "linear_gamma2", 59.0, 60.0, old, "fashion-mnist-m")
    assert "+0.89 ± 1.17 (3 seeds: 59.01 ± 0.34 -> 59.90 ± 0.95); within noise" in change
    assert "(-1.46 to +3.23, 3 seeds)" in change and "- paper change: +4.4 (59.0 → 63.4 %)" in change
    smoke = live.beside_reference("predict_image", 30.0, "smoke", "fashion-mnist-m")
    assert "no shipped reference for budget `smoke` on `fashion-mnist-m`" in smoke and "LDAE_BUDGET=lecture" in smoke
    longer = live.beside_reference("linear_gamma2", 63.6, dataclasses.replace(get_budget("lecture"), batch_size=256),
                                   "fashion-mnist-m")
    assert "trajectory_fashion-mnist-m_lecture_batch_size256.json" in longer


def test_side_experiments_from_the_shipped_levers_table():
    text = live.side_reference("latent dim", "fashion-mnist", "lecture")  # only the levers table has these rows
    assert text.startswith("**Shipped, not trained here** (`LIVE_SIDE_RUNS = False`")
    assert "From `results/lecture/levers.json`." in text
    assert "patch PCA, d = 32 of D = 64" in text and "of D = 192" not in text  # this dataset's rows only
    sweep = live.shipped_sweep("latent dim", "fashion-mnist", get_budget("lecture"))
    assert list(sweep) == [2, 4, 8, 16, 32, 64] and f"{sweep[16]:.2f}" in text
    missing = live.side_reference("masking", "fashion-mnist", "lecture")
    assert missing.startswith("**Not trained here, and not shipped**") and "LIVE_SIDE_RUNS = True" in missing
    assert "no group 'masking' rows for `fashion-mnist` are shipped" in missing
    absent = live.side_reference("label", "digits", "smoke")
    assert absent.startswith("**Not trained here") and "`results/smoke/side_experiments.json`" in absent
    assert live.shipped_sweep("latent dim", "digits") == {}


def test_a_reference_of_one_seed_or_without_the_step(tmp_path):
    assert live.inside_line([61.0], [60.0]).startswith("**no spread to compare with**: the reference has one seed")
    path = write_report(tmp_path, ACCURACIES)
    report = json.loads(path.read_text())
    report["steps"] = report["steps"][:1]  # a partial report: step 1 only
    path.write_text(json.dumps(report))
    text = live.beside_reference("no_class_cond", 62.0, "lecture", "digits", folders=[tmp_path])
    assert "**no reference**: the shipped reference" in text and "has no step `no_class_cond`" in text
    change = live.change_beside_reference("dit_baseline", "no_class_cond", 61.0, 62.0, "lecture", "digits",
                                          folders=[tmp_path])
    assert "lacks step `dit_baseline` or `no_class_cond`" in change
