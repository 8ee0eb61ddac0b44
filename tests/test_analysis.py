"""analysis: the probe at other t and depths (same protocol as run(), cached next to the run), label use."""

import json

import pytest
import torch
from _tiny import TINY

from ldae_lite import analysis, cache, experiment
from ldae_lite.recipes import LDAE, TRAJECTORY


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
    stored = json.loads((cache.run_folder(LDAE, TINY, "digits", 0) / "analysis.json").read_text())
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
    stored = json.loads((cache.run_folder(LDAE, TINY, "digits", 0) / "analysis.json").read_text())
    assert set(stored) == {"version", "clean_t", "noisy_t"}


def test_probe_by_depth_default_depth_is_run_probe(runs):
    result = experiment.run(LDAE, TINY, "digits", seed=0, progress=False)
    accs = analysis.probe_by_depth(LDAE, TINY, "digits", 0, progress=False)
    assert list(accs) == list(range(TINY.depth + 1))
    assert accs[TINY.depth // 2] == pytest.approx(result.probe_accuracy, abs=1e-6)


def test_corrupted_cache_is_recomputed(runs):
    first = analysis.probe_by_depth(LDAE, TINY, "digits", 1, depths=(1,), progress=False)
    path = cache.run_folder(LDAE, TINY, "digits", 1) / "analysis.json"
    path.write_text("{ not json")
    with pytest.warns(UserWarning, match="corrupted file"):
        again = analysis.probe_by_depth(LDAE, TINY, "digits", 1, depths=(1,), progress=False)
    assert again == pytest.approx(first) and json.loads(path.read_text())["depth"]["1"] == again[1]


def test_bad_t_and_depth_are_rejected():
    with pytest.raises(ValueError, match="ts=.*1000"):
        analysis.probe_at_t(LDAE, TINY, "digits", 0, ts=(1000,))
    with pytest.raises(ValueError, match="depths=.*2 blocks"):
        analysis.probe_by_depth(LDAE, TINY, "digits", 0, depths=(3,))


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
