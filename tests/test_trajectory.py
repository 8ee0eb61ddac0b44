"""The trajectory: run in one process or two (the same numbers, and a time breakdown that adds up), which
steps a live report runs, a live report read back, and the command line that runs it."""

import json

import pytest
import torch
from _tiny import TINY

from ldae_lite import compare, experiment, report, timing, trajectory
from ldae_lite.recipes import STEPS, TRAJECTORY


@pytest.fixture(autouse=True)
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("LDAE_RUNS", str(tmp_path))
    return tmp_path


def test_trajectory_in_two_processes_gives_the_numbers_of_one(tmp_path, monkeypatch):
    """workers=2 fits the shared tokenizers and the CNN, and trains the runs, in two processes: every
    number must be what one process gets running them one after another."""
    steps = (STEPS["dit_baseline"], STEPS["predict_image"])  # conv VAE + CNN + sampling, and patch PCA
    reports = {}
    for workers in (1, 2):
        monkeypatch.setenv("LDAE_RUNS", str(tmp_path / f"workers{workers}"))
        reports[workers] = trajectory.run(TINY, "digits", seeds=(0, 1), steps=steps, progress=False,
                                          workers=workers)
    for one, two in zip(reports[1]["steps"], reports[2]["steps"]):
        assert one["accuracies"] == two["accuracies"] and one["knn"] == two["knn"]
        assert (one["frechet"] is None) == (two["frechet"] is None)
        if one["frechet"] is not None:  # dit_baseline samples images (the other step is not generative)
            assert one["frechet"] == pytest.approx(two["frechet"], rel=1e-3)
        assert not two["cached"]
    assert reports[1]["raw_pixels"] == reports[2]["raw_pixels"]
    assert reports[2]["meta"]["workers"] == 2 and reports[2]["meta"]["runs_trained"] == 4
    for workers, rep in reports.items():
        check_time_breakdown(rep["meta"], workers)
    again = trajectory.run(TINY, "digits", seeds=(0, 1), steps=steps, progress=False, workers=2)
    assert all(row["cached"] for row in again["steps"]) and again["meta"]["runs_trained"] == 0
    phases = again["meta"]["time_breakdown"]["phases"]  # all of it reused, in this one process
    assert again["meta"]["time_breakdown"]["workers"] == 1
    assert all(phases[name]["cached"] and phases[name]["seconds"] == 0 for name in timing.PHASES), phases
    with pytest.raises(ValueError, match="workers=0 must be >= 1"):
        trajectory.run(TINY, "digits", steps=steps, progress=False, workers=0)


def check_time_breakdown(meta: dict, workers: int) -> None:
    """A trained trajectory's time: every phase there, none negative, the work's phases took time, and the
    seconds add up to the wall time (the pool's counted once per worker)."""
    tb = meta["time_breakdown"]
    assert list(tb["phases"]) == list(timing.BREAKDOWN) and tb["workers"] == workers
    assert tb["wall_seconds"] == meta["wall_seconds"]
    assert tb["wall_seconds"] <= tb["worker_seconds"] <= workers * tb["wall_seconds"] + 1e-9
    seconds = {name: p["seconds"] for name, p in tb["phases"].items()}
    assert sum(seconds.values()) == pytest.approx(tb["worker_seconds"], rel=1e-9)
    assert sum(p["percent"] for p in tb["phases"].values()) == pytest.approx(100.0)
    assert all(s >= -1e-3 for s in seconds.values()), seconds  # "other" is what is left: never below 0
    assert all(seconds[name] > 0 for name in ("data", "cnn", "tokenizers", "training", "features", "probes",
                                              "sampling")), seconds
    assert not any(p["cached"] for p in tb["phases"].values())
    if workers == 1:
        assert tb["busy_percent"] is None and seconds["workers_idle"] == 0
    else:
        assert 0 < tb["busy_percent"] <= 100 and seconds["workers_idle"] > 0


def test_steps_to_run_uses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LDAE_RUNS", str(tmp_path))  # an empty cache
    assert [s.key for s in trajectory.steps_to_run(TINY, "digits")] == ["image_output", "predict_image"]
    assert trajectory.steps_to_run(TINY, "digits", run_all=True) == TRAJECTORY
    experiment.run(STEPS["patch_pca"].recipe, TINY, "digits", seed=0, progress=False)
    assert experiment.is_done(STEPS["patch_pca"].recipe, TINY, "digits", 0)
    assert not experiment.is_done(STEPS["patch_pca"].recipe, TINY, "digits", 0, generate=True)
    assert [s.key for s in trajectory.steps_to_run(TINY, "digits")] == ["patch_pca", "image_output", "predict_image"]


def test_a_live_tiny_report_reads_back(runs):
    rep = trajectory.run(TINY, "digits", steps=TRAJECTORY[-2:], generate=False, progress=False)
    assert [r["key"] for r in rep["steps"]] == [s.key for s in TRAJECTORY[-2:]]
    assert "delta" not in rep["steps"][0] and rep["steps"][1]["within_noise"] is None  # one seed: no noise bar
    text = compare.reproduction_summary(rep)
    assert "2 of the 13 steps" in text and "previous one *shown*" in text
    assert "budget `tiny`" in report.describe_report(rep, "somewhere.json")


def test_cli_trajectory_with_train_steps_names_the_override(runs, capsys):
    from ldae_lite.__main__ import main

    out = runs / "out"
    assert main(["trajectory", "--budget", "smoke", "--train-steps", "3", "--dataset", "digits", "--workers", "1",
                 "--steps", "predict_image", "--no-generate", "--out", str(out)]) == 0
    saved = json.loads((out / "trajectory_digits_smoke_steps3.json").read_text())
    assert saved["meta"]["overrides"] == {"steps": 3} and saved["meta"]["label"] == "smoke, steps=3"
    assert (out / "trajectory_digits_smoke_steps3.png").stat().st_size > 0
    markdown = (out / "trajectory_digits_smoke_steps3.md").read_text()
    assert "Budget `smoke, steps=3`" in markdown and "Where the time went" in markdown
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("time: ")  # the CLI's last line
    (folder,) = runs.glob("denoisers/digits-smoke-*")
    assert torch.load(folder / "ckpt.pt", weights_only=False)["step"] == 3
    with pytest.raises(SystemExit):
        main(["trajectory", "--train-steps", "0"])
    assert "--train-steps 0: must be >= 1" in capsys.readouterr().err


def test_train_first_trains_the_missing_runs_then_reads_them_from_the_cache(runs, capsys):
    from ldae_lite import experiment, trajectory
    from ldae_lite.recipes import STEPS

    keys = ["patch_pca", "predict_x0"]
    assert trajectory.train_first(keys, "smoke", "digits", seed=0, workers=1) == 2
    assert all(experiment.is_done(STEPS[k].recipe, "smoke", "digits", 0) for k in keys)
    assert trajectory.train_first(keys, "smoke", "digits", seed=0) == 0  # all cached: nothing trained
    assert "0 of 2 runs trained here, 2 read from the cache" in capsys.readouterr().out
    with pytest.raises(ValueError, match="'nope'.*one of"):
        trajectory.train_first(["nope"], "smoke", "digits")
