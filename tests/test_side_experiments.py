"""Side experiments: recipes that are not trajectory steps, trained in parallel (trajectory.run_many), the
table scripts/side_experiments.py writes, and the notebooks' readers of it (live.side_reference and co.)."""

import importlib.util
import json
from pathlib import Path

import pytest
from _tiny import TINY

from ldae_lite import analysis, levers, live, trajectory, validate
from ldae_lite.recipes import LDAE, SINGLE_NOISE

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "side_experiments.py"


@pytest.fixture(autouse=True)
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("LDAE_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def load_script():
    spec = importlib.util.spec_from_file_location("side_experiments", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_many_trains_recipes_and_the_jobs_that_wait_for_them():
    runs = [("l-DAE", LDAE, 0), ("single", SINGLE_NOISE, 0), ("l-DAE", LDAE, 1)]
    after = {"probes": (analysis.encoder_probes, (LDAE, TINY, "digits", 0), dict(ts=(0, 10)), (("l-DAE", 0),))}
    out = trajectory.run_many(runs, TINY, "digits", workers=2, after=after, progress=False)
    assert {("l-DAE", 0), ("single", 0), ("l-DAE", 1), "raw", "probes"} <= set(out)
    assert not any(out[(name, s)].cached for name, _, s in runs)
    probes = out["probes"]
    assert set(probes["clean_t"]) == set(probes["noisy_t"]) == {0, 10} and set(probes["depth"]) == {0, 1, 2}
    assert probes["clean_t"][10] == pytest.approx(out[("l-DAE", 0)].probe_accuracy, abs=0.5)  # run()'s probe
    again = trajectory.run_many(runs, TINY, "digits", workers=2, progress=False, raw=False)
    assert "raw" not in again and all(again[(name, s)].cached for name, _, s in runs)
    assert [again[(n, s)].probe_accuracy for n, _, s in runs] == [out[(n, s)].probe_accuracy for n, _, s in runs]
    with pytest.raises(validate.BadValue, match="each \\(name, seed\\) must appear once"):
        trajectory.run_many(runs + runs[:1], TINY, "digits")
    with pytest.raises(validate.BadValue, match="workers=0 must be >= 1"):
        trajectory.run_many(runs, TINY, "digits", workers=0)


def test_the_script_writes_a_table_the_notebooks_read(tmp_path, monkeypatch):
    side = load_script()
    monkeypatch.setattr(side, "DIMS", (8,))
    monkeypatch.setattr(side, "ORTHONORMAL_STEPS", ("predict_image",))
    monkeypatch.setattr(side, "SEEDS", (0, 1))
    table, gap, trained = side.measure(TINY, "digits", (0, 1), workers=2)
    assert trained == 16  # (4 side recipes, d = 8, one orthonormal step, steps 8 and 12: no reference) x 2 seeds
    path = side.save(table, gap, trained, TINY, tmp_path, "python scripts/side_experiments.py", 1.0)
    shipped = json.loads(path.read_text())
    assert levers.to_markdown(shipped["meta"], shipped["rows"]) == path.with_suffix(".md").read_text()
    groups = {r["group"] for r in shipped["rows"]}
    assert groups == {"dataset", "noise levels", "masking", "whitening", "latent dim", "fixed t", "depth"}
    sweep = live.shipped_seeds("latent dim", "digits", "tiny", tmp_path)
    assert list(sweep) == [8, 16] and all(len(v) == 2 for v in sweep.values())
    assert live.shipped_sweep("latent dim", "digits", "tiny", tmp_path)[8] == pytest.approx(sum(sweep[8]) / 2)
    clean = live.shipped_seeds("fixed t", "digits", "tiny", tmp_path, "t", contains="clean")
    assert list(clean) == list(analysis.FIXED_TS)
    assert list(live.shipped_seeds("depth", "digits", "tiny", tmp_path, "k")) == [0, 1, 2]
    text = live.side_reference("masking", "digits", "tiny", tmp_path)
    assert text.startswith("**Shipped, not trained here**") and "side_experiments.json" in text
    assert "75% masking (from noise), digits" in text  # the change over the two seeds
    assert "std" in live.shipped_table("noise levels", "digits", "tiny", tmp_path)


def test_a_table_of_some_groups_says_which_are_missing(tmp_path):
    side = load_script()
    table, gap, trained = side.measure(TINY, "digits", (0, 1), workers=2, groups=("masking",))
    assert trained == 4 and {r["group"] for r in table.rows} == {"dataset", "masking"}  # l-DAE and masked, 2 seeds
    path = side.save(table, gap, trained, TINY, tmp_path, "python scripts/side_experiments.py", 1.0, ("masking",))
    assert "Note: groups still to be measured: dataset, noise levels, whitening" in path.with_suffix(".md").read_text()
    # a second call measures another group and keeps the first call's: one table built over two calls
    table, gap, trained = side.measure(TINY, "digits", (0, 1), workers=2, groups=("noise levels",))
    assert trained == 2  # the single noise level; l-DAE comes from the run cache
    previous = levers.read("tiny", tmp_path, levers.SIDE_FILE)[1]
    groups, merged = side.merge(table, ("noise levels",), previous, TINY)
    assert groups == ["noise levels", "masking"] and merged.startswith("the groups masking are from `python scripts")
    assert [r["group"] for r in table.rows] == ["dataset"] * 2 + ["noise levels"] * 2 + ["masking"] * 2
    assert [c["group"] for c in table.changes] == ["dataset", "noise levels", "masking"]
    path = side.save(table, gap, trained, TINY, tmp_path, "python scripts/side_experiments.py", 1.0, groups, merged)
    text = path.with_suffix(".md").read_text()
    assert "groups still to be measured: dataset, whitening, latent dim, fixed t, depth" in text and merged in text
    assert "every run was read" not in text and side.measured_groups(json.loads(path.read_text())) == groups
    # a table made by other training code is replaced, not merged
    previous["meta"]["training_code_hash"] = "0123456789ab"
    assert side.merge(table, ("noise levels",), previous, TINY) == (["noise levels"], "")


def test_the_side_table_comes_before_the_levers_table(tmp_path):
    def row(group, what, accuracy):
        return dict(group=group, dataset="digits", what=what, accuracy=accuracy, note="")

    meta = dict(budget="lecture", device="cpu", commit="abc", created="now", command="python x.py", changes=[])
    (tmp_path / levers.FILE).write_text(json.dumps(dict(meta=meta, rows=[row("latent dim", "d = 8", 50.0),
                                                                         row("label", "baseline", 40.0)])))
    (tmp_path / levers.SIDE_FILE).write_text(json.dumps(dict(meta=meta, rows=[row("latent dim", "d = 8", 60.0)])))
    assert live.shipped_sweep("latent dim", "digits", "lecture", tmp_path) == {8: 60.0}
    assert live.side_rows("label", "digits", "lecture", tmp_path)[1][0]["accuracy"] == 40.0  # only in levers
    missing = live.side_reference("masking", "digits", "lecture", tmp_path)
    assert missing.startswith("**Not trained here, and not shipped**") and levers.SIDE_FILE in missing


def test_a_step_shown_from_the_reference_and_the_reference_means():
    text = live.shipped_step("no_input_scaling", "lecture", "fashion-mnist-m")
    assert text.startswith("**Step 10, remove input scaling: shipped, not trained here** (`LIVE_ALL_STEPS = False`")
    assert "over seeds 0, 1, 2 (`results/lecture/trajectory_fashion-mnist-m_lecture.json`)" in text
    assert "reference change from step 9:" in text and "paper: 63.6 %; change from step 9: +1.2" in text
    means = live.reference_means("lecture", "fashion-mnist-m")
    assert len(means) == 13 and f"{means['no_input_scaling']:.2f}" in text
    assert live.reference_means("smoke", "fashion-mnist-m") == {}
    assert "**no reference**" in live.shipped_step("image_input", "smoke", "fashion-mnist-m")


def test_the_script_refuses_a_latent_dim_it_cannot_sweep(capsys):
    side = load_script()
    for bad in ("16", "0"):
        with pytest.raises(SystemExit):
            side.main(["--budget", "smoke", "--dims", "8", bad])
        assert f"--dims {bad}: each must be >= 1 and not 16" in capsys.readouterr().err


def test_the_shipped_side_table():
    shipped = json.loads((levers.RESULTS_DIR / "lecture" / levers.SIDE_FILE).read_text())
    meta, rows = shipped["meta"], shipped["rows"]
    assert levers.to_markdown(meta, rows) == (levers.RESULTS_DIR / "lecture" / "side_experiments.md").read_text()
    assert meta["budget"] == "lecture" and meta["label"] == "lecture" and "side_experiments.py" in meta["command"]
    assert {r["dataset"] for r in rows} == {"fashion-mnist-m"} and all(len(r["accuracies"]) == 3 for r in rows[1:])
    text = live.side_reference("masking", "fashion-mnist-m", "lecture")
    assert "From `results/lecture/side_experiments.json`." in text and "75% masking (from noise)" in text
    clean = live.shipped_seeds("fixed t", "fashion-mnist-m", "lecture", field="t", contains="clean")
    assert list(clean) == list(analysis.FIXED_TS)
    # the l-DAE rows were trained again and equal the shipped trajectory's step 13, seed by seed
    ldae = next(r for r in rows if r["what"] == "l-DAE")
    step13 = live.reference_report("fashion-mnist-m", "lecture")[1]["steps"][-1]
    assert ldae["accuracies"] == step13["accuracies"]
