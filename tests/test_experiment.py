"""run(): cache hit, resume after an interruption, corrupted files, keys, re-probing; building a run."""

import dataclasses
import json

import pytest
import torch
from _tiny import TINY

from ldae_lite import builders, cache, experiment
from ldae_lite.recipes import LDAE, STEPS, TRAJECTORY


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
    assert first.probe_version == cache.PROBE_VERSION and first.probe_base_lr is not None
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
    assert json.loads(result.read_text())["probe_version"] == cache.PROBE_VERSION


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


def test_trained_tokenizers_and_the_cnn_are_fitted_on_fit_threads(runs, monkeypatch):
    """Convolutions round differently with another thread count: fitting on FIT_THREADS threads makes a
    tokenizer the same bits in a notebook and in a worker process. The caller's count comes back after."""
    seen = []
    real_train_cnn, real_make = builders.supervised.train_cnn, builders.tokenizers.make_tokenizer

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

    monkeypatch.setattr(builders.supervised, "train_cnn", train_cnn)
    monkeypatch.setattr(builders.tokenizers, "make_tokenizer", make_tokenizer)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        experiment.get_tokenizer(STEPS["dit_baseline"].recipe, TINY, "digits", 0, "cpu", progress=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert [name for name, _ in seen][0] == "cnn" and len(seen) == 2  # the VQGAN-style tokenizer needs the CNN
    assert all(n == builders.FIT_THREADS for _, n in seen)


def test_a_runs_key_holds_its_trained_tokenizers_key(monkeypatch):
    """A change to a trained tokenizer's key (its budget, its code) retrains the runs that use it, and only
    those: a PCA run's key does not hold its tokenizer's key (PCA is fitted in seconds, from the data)."""
    conv, pca = STEPS["dit_baseline"].recipe, LDAE
    keys = {r: cache.run_key(r, TINY, "digits", 0) for r in (conv, pca)}
    real = cache.tokenizer_key
    monkeypatch.setattr(cache, "tokenizer_key", lambda *a: real(*a) + "-other")
    assert cache.run_key(conv, TINY, "digits", 0) != keys[conv]
    assert cache.run_key(pca, TINY, "digits", 0) == keys[pca]


def test_other_probe_settings_probe_the_same_weights_again(runs, capsys):
    first = experiment.run(LDAE, TINY, "digits", seed=4, progress=False)
    assert first.probe == cache.probe_settings(TINY)
    longer = dataclasses.replace(TINY, probe_epochs=TINY.probe_epochs + 2)
    assert cache.run_key(LDAE, longer, "digits", 4) == cache.run_key(LDAE, TINY, "digits", 4)
    assert cache.run_key(LDAE, dataclasses.replace(TINY, steps=TINY.steps + 1), "digits", 4) != first.key
    assert not experiment.is_done(LDAE, longer, "digits", 4) and experiment.is_done(LDAE, TINY, "digits", 4)
    capsys.readouterr()
    again = experiment.run(LDAE, longer, "digits", seed=4, progress=False)
    assert "other probe settings" in capsys.readouterr().out and not again.cached
    assert again.train_seconds == first.train_seconds and again.probe == cache.probe_settings(longer)
    assert experiment.run(LDAE, longer, "digits", seed=4, progress=False).cached  # now stored as probed


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
