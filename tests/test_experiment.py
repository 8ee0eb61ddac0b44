"""run(): cache hit, resume after an interruption, corrupted files; the CLI's trajectory on a tiny budget."""

import dataclasses
import json

import pytest
import torch

from ldae_lite import budgets, experiment, report
from ldae_lite.recipes import LDAE, STEPS, TRAJECTORY

TINY = dataclasses.replace(budgets.get_budget("smoke"), name="tiny", steps=6, train_subset=256, probe_train=256,
                           probe_test=128, tokenizer_steps=4, cnn_steps=4, fid_samples=32, sample_steps=3,
                           probe_epochs=3, width=32, depth=2, heads=2)


@pytest.fixture(autouse=True)
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("LDAE_RUNS", str(tmp_path))
    return tmp_path


def test_run_then_cache_hit(runs, capsys):
    first = experiment.run(LDAE, TINY, "digits", seed=0, progress=False)
    assert 0 <= first.probe_accuracy <= 100 and not first.cached and first.train_seconds > 0
    second = experiment.run(LDAE, TINY, "digits", seed=0, progress=False)
    assert second.cached and second.probe_accuracy == first.probe_accuracy
    assert "reusing cached run" in capsys.readouterr().out


def test_corrupted_result_is_recomputed(runs):
    first = experiment.run(LDAE, TINY, "digits", seed=1, progress=False)
    (result,) = runs.glob("denoisers/*/result.json")
    result.write_text("{ not json")
    with pytest.warns(UserWarning, match="corrupted file"):
        again = experiment.run(LDAE, TINY, "digits", seed=1, progress=False)
    assert not again.cached and again.probe_accuracy == pytest.approx(first.probe_accuracy)
    assert json.loads(result.read_text())["probe_accuracy"] == again.probe_accuracy


def test_corrupted_tokenizer_is_refit(runs):
    recipe = TRAJECTORY[5].recipe  # patch VAE: a trained tokenizer
    experiment.get_tokenizer(recipe, TINY, "digits", 0, "cpu", progress=False)
    (path,) = runs.glob("tokenizers/*.pt")
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="corrupted file"):
        tok = experiment.get_tokenizer(recipe, TINY, "digits", 0, "cpu", progress=False)
    assert tok.encode(torch.zeros(2, 1, 32, 32)).shape == (2, 16, 16)


def test_interrupted_run_resumes(runs, monkeypatch):
    budget = dataclasses.replace(TINY, steps=10)
    real_train = experiment.train

    def interrupted(*args, **kwargs):
        def stop(step, *a, **k):
            if step >= 5:
                raise KeyboardInterrupt
        return real_train(*args, **kwargs, on_step=stop)

    monkeypatch.setattr(experiment, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        experiment.run(LDAE, budget, "digits", seed=2, progress=False)
    (ckpt,) = runs.glob("denoisers/*/ckpt.pt")
    assert torch.load(ckpt, weights_only=False)["step"] >= 5
    monkeypatch.setattr(experiment, "train", real_train)
    resumed = experiment.run(LDAE, budget, "digits", seed=2, progress=False)
    assert torch.load(ckpt, weights_only=False)["step"] == 10
    monkeypatch.setenv("LDAE_RUNS", str(runs / "fresh"))
    uninterrupted = experiment.run(LDAE, budget, "digits", seed=2, progress=False)
    (fresh,) = (runs / "fresh").glob("denoisers/*/ckpt.pt")
    a, b = torch.load(ckpt, weights_only=False)["model"], torch.load(fresh, weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # the resumed run ends exactly where one run would
    assert resumed.probe_accuracy == uninterrupted.probe_accuracy


def test_generative_step_reports_a_frechet_distance(runs):
    r = experiment.run(TRAJECTORY[0].recipe, TINY, "digits", seed=0, generate=True, progress=False)
    assert r.frechet is not None and r.frechet >= 0


def test_run_probed_with_an_older_probe_is_probed_again_not_retrained(runs, capsys):
    first = experiment.run(TRAJECTORY[0].recipe, TINY, "digits", seed=3, generate=True, progress=False)
    assert first.probe_version == experiment.PROBE_VERSION and first.probe_base_lr is not None
    (result,) = runs.glob("denoisers/*/result.json")
    old = {**json.loads(result.read_text()), "probe_accuracy": -1.0, "frechet": 123.0}
    del old["probe_version"]  # as written before probe versions existed
    result.write_text(json.dumps(old))
    capsys.readouterr()
    again = experiment.run(TRAJECTORY[0].recipe, TINY, "digits", seed=3, generate=True, progress=False)
    out = capsys.readouterr().out
    assert "older probe" in out and not again.cached
    assert again.probe_accuracy == pytest.approx(first.probe_accuracy)  # the same weights, probed again
    assert again.train_seconds == first.train_seconds  # not retrained
    assert again.frechet == 123.0  # sampling is not redone for a new probe
    assert json.loads(result.read_text())["probe_version"] == experiment.PROBE_VERSION


def test_pixel_baseline_is_computed_once(runs, capsys):
    first = experiment.pixel_baseline("digits", TINY, progress=False)
    assert 0 < first["linear"] <= 100 and 0 < first["knn"] <= 100 and first["n_train"] == 256
    capsys.readouterr()
    second = experiment.pixel_baseline("digits", TINY, progress=False)
    assert second == first and "reusing cached raw-pixel baseline" in capsys.readouterr().out
    (path,) = runs.glob("baselines/*.json")
    path.write_text("{ broken")
    with pytest.warns(UserWarning, match="corrupted file"):
        assert experiment.pixel_baseline("digits", TINY, progress=False)["linear"] == first["linear"]


def test_trajectory_in_two_processes_gives_the_numbers_of_one(tmp_path, monkeypatch):
    """workers=2 fits the shared tokenizers and the CNN, and trains the runs, in two processes: every
    number must be what one process gets running them one after another."""
    steps = (STEPS["dit_baseline"], STEPS["predict_image"])  # conv VAE + CNN + sampling, and patch PCA
    reports = {}
    for workers in (1, 2):
        monkeypatch.setenv("LDAE_RUNS", str(tmp_path / f"workers{workers}"))
        reports[workers] = report.trajectory(TINY, "digits", seeds=(0, 1), steps=steps, progress=False,
                                             workers=workers)
    for one, two in zip(reports[1]["steps"], reports[2]["steps"]):
        assert one["accuracies"] == two["accuracies"] and one["knn"] == two["knn"]
        assert (one["frechet"] is None) == (two["frechet"] is None)
        if one["frechet"] is not None:  # dit_baseline samples images (the other step is not generative)
            assert one["frechet"] == pytest.approx(two["frechet"], rel=1e-3)
        assert not two["cached"]
    assert reports[1]["raw_pixels"] == reports[2]["raw_pixels"]
    assert reports[2]["meta"]["workers"] == 2 and reports[2]["meta"]["runs_trained"] == 4
    again = report.trajectory(TINY, "digits", seeds=(0, 1), steps=steps, progress=False, workers=2)
    assert all(row["cached"] for row in again["steps"]) and again["meta"]["runs_trained"] == 0
    with pytest.raises(ValueError, match="workers=0 must be >= 1"):
        report.trajectory(TINY, "digits", steps=steps, progress=False, workers=0)


def test_trained_tokenizers_and_the_cnn_are_fitted_on_fit_threads(runs, monkeypatch):
    """Convolutions round differently with another thread count: fitting on FIT_THREADS threads makes a
    tokenizer the same bits in a notebook and in a worker process. The caller's count comes back after."""
    seen = []
    real_train_cnn, real_make = experiment.supervised.train_cnn, experiment.tokenizers.make_tokenizer

    def train_cnn(*args, **kwargs):
        seen.append(("cnn", torch.get_num_threads()))
        return real_train_cnn(*args, **kwargs)

    def make_tokenizer(*args, **kwargs):
        tok = real_make(*args, **kwargs)
        fit = tok.fit

        def recorded(*a, **k):
            seen.append((type(tok).__name__, torch.get_num_threads()))
            return fit(*a, **k)

        tok.fit = recorded
        return tok

    monkeypatch.setattr(experiment.supervised, "train_cnn", train_cnn)
    monkeypatch.setattr(experiment.tokenizers, "make_tokenizer", make_tokenizer)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        experiment.get_tokenizer(STEPS["dit_baseline"].recipe, TINY, "digits", 0, "cpu", progress=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert [name for name, _ in seen][0] == "cnn" and len(seen) == 2  # the VQGAN-style tokenizer needs the CNN
    assert all(n == experiment.FIT_THREADS for _, n in seen)


def test_a_runs_key_holds_its_trained_tokenizers_key(monkeypatch):
    """A change to how tokenizers are fitted (FIT_VERSION) retrains the runs that use a trained tokenizer,
    and only those: a PCA run keeps its key and its cached result."""
    conv, pca = STEPS["dit_baseline"].recipe, LDAE
    keys = {r: experiment.run_key(r, TINY, "digits", 0) for r in (conv, pca)}
    monkeypatch.setattr(experiment, "FIT_VERSION", experiment.FIT_VERSION + 1)
    assert experiment.run_key(conv, TINY, "digits", 0) != keys[conv]
    assert experiment.run_key(pca, TINY, "digits", 0) == keys[pca]


def test_other_probe_settings_probe_the_same_weights_again(runs, capsys):
    first = experiment.run(LDAE, TINY, "digits", seed=4, progress=False)
    assert first.probe == experiment.probe_settings(TINY)
    longer = dataclasses.replace(TINY, probe_epochs=TINY.probe_epochs + 2)
    assert experiment.run_key(LDAE, longer, "digits", 4) == experiment.run_key(LDAE, TINY, "digits", 4)
    assert experiment.run_key(LDAE, dataclasses.replace(TINY, steps=TINY.steps + 1), "digits", 4) != first.key
    assert not experiment.is_done(LDAE, longer, "digits", 4) and experiment.is_done(LDAE, TINY, "digits", 4)
    capsys.readouterr()
    again = experiment.run(LDAE, longer, "digits", seed=4, progress=False)
    assert "other probe settings" in capsys.readouterr().out and not again.cached
    assert again.train_seconds == first.train_seconds and again.probe == experiment.probe_settings(longer)
    assert experiment.run(LDAE, longer, "digits", seed=4, progress=False).cached  # now stored as probed


def test_cli_trajectory_with_train_steps_names_the_override(runs, capsys):
    from ldae_lite.__main__ import main

    out = runs / "out"
    assert main(["trajectory", "--budget", "smoke", "--train-steps", "3", "--dataset", "digits", "--workers", "1",
                 "--steps", "predict_image", "--no-generate", "--out", str(out)]) == 0
    saved = json.loads((out / "trajectory_digits_smoke_steps3.json").read_text())
    assert saved["meta"]["overrides"] == {"steps": 3} and saved["meta"]["label"] == "smoke, steps=3"
    assert (out / "trajectory_digits_smoke_steps3.png").stat().st_size > 0
    assert "Budget `smoke, steps=3`" in (out / "trajectory_digits_smoke_steps3.md").read_text()
    (folder,) = runs.glob("denoisers/digits-smoke-*")
    assert torch.load(folder / "ckpt.pt", weights_only=False)["step"] == 3
    with pytest.raises(SystemExit):
        main(["trajectory", "--train-steps", "0"])
    assert "--train-steps 0: must be >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("levels, sigma", [("multi", None), ("single", 3 ** -0.5), ("single_1/3", 1 / 3)])
def test_each_noise_levels_setting_trains_and_is_probed_at_its_level(levels, sigma):
    from ldae_lite.recipes import NOISE_LEVELS
    from ldae_lite.tokenizers import make_tokenizer

    assert levels in NOISE_LEVELS
    recipe = dataclasses.replace(LDAE, noise_levels=levels)
    tok = make_tokenizer("patch_pca", 4, image_size=32, channels=1, patch_size=8)
    tok.fit(torch.rand(64, 1, 32, 32))
    obj, _ = experiment.build(recipe, tok, TINY)
    if sigma is None:
        assert obj.schedule.single_sigma is None and experiment.probe_t(recipe, obj.schedule) == experiment.PROBE_T
    else:
        t = experiment.probe_t(recipe, obj.schedule)
        assert obj.schedule.single_sigma == sigma and float(obj.schedule.sigma(torch.tensor([t]))) == pytest.approx(
            sigma, abs=2e-3)
        assert torch.all(obj.schedule.sample_t(16, generator=torch.Generator().manual_seed(0)) == t)
