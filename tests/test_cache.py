"""cache: atomic writes (the one mechanism, checkpoint.atomic_write), damaged files, keys, is_done; stored
records checked when read back, the training code in every key, the fresh switch."""

import json
import os
import re

import pytest
import torch
from _tiny import TINY

from ldae_lite import cache, checkpoint, experiment
from ldae_lite.recipes import LDAE


def test_writes_are_atomic_and_read_back(tmp_path):
    path = tmp_path / "sub" / "a.json"
    cache.write_json(path, {"x": [1, 2.5], "y": "é"})
    assert cache.read_json(path) == {"x": [1, 2.5], "y": "é"}
    cache.write_text(tmp_path / "a.md", "| a |\n")
    assert (tmp_path / "a.md").read_text() == "| a |\n"

    def half_then_crash(f):
        f.write(b'{"x": ')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        checkpoint.atomic_write(path, half_then_crash)
    assert cache.read_json(path) == {"x": [1, 2.5], "y": "é"}  # the old file, whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]  # no temporary file left behind


def test_a_damaged_file_is_reported_and_absent(tmp_path):
    (tmp_path / "b.json").write_text("{ not json")
    with pytest.warns(UserWarning, match="corrupted file .*b.json"):
        assert cache.read_json(tmp_path / "b.json") is None
    assert cache.read_json(tmp_path / "missing.json") is None


def test_is_done_is_what_run_answers_from_its_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LDAE_RUNS", str(tmp_path))
    assert not cache.is_done(LDAE, TINY, "digits", 0)
    experiment.run(LDAE, TINY, "digits", seed=0, progress=False)
    assert cache.is_done(LDAE, TINY, "digits", 0) and not cache.is_done(LDAE, TINY, "digits", 0, generate=True)
    assert cache.run_folder(LDAE, TINY, "digits", 0).name.endswith(cache.run_key(LDAE, TINY, "digits", 0))
    assert experiment.run(LDAE, TINY, "digits", seed=0, progress=False).cached


# --------------------------------------------------------------------------------------------------
# stored records checked when read back; the training code in every key; a fresh session
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("LDAE_RUNS", str(tmp_path))
    monkeypatch.delenv("LDAE_FRESH", raising=False)
    monkeypatch.delenv("LDAE_FRESH_SESSION", raising=False)  # set by a fresh session; removed again after
    return tmp_path


def edit(path, change):
    stored = json.loads(path.read_text())
    change(stored)
    path.write_text(json.dumps(stored))


@pytest.mark.parametrize("change, said", [
    (lambda r: r.pop("knn_accuracy"), "field 'knn_accuracy' is missing"),
    (lambda r: r.update(probe_accuracy="high"), "field 'probe_accuracy' is 'high' (str), expected float"),
    (lambda r: r.update(seed=True), "field 'seed' is True (bool), expected int"),
])
def test_a_hand_edited_result_is_recomputed_with_a_warning(runs, change, said):
    first = experiment.run(LDAE, TINY, "digits", seed=5, progress=False)
    path = cache.run_folder(LDAE, TINY, "digits", 5) / "result.json"
    edit(path, change)
    with pytest.warns(UserWarning, match=re.escape(f"{path}: {said}; recomputing it")):
        assert not cache.is_done(LDAE, TINY, "digits", 5)
    with pytest.warns(UserWarning, match=re.escape(said)):
        again = experiment.run(LDAE, TINY, "digits", seed=5, progress=False)
    assert not again.cached and again.probe_accuracy == first.probe_accuracy
    assert again.train_seconds == first.train_seconds  # the weights were sound: probed again, not retrained
    assert experiment.run(LDAE, TINY, "digits", seed=5, progress=False).cached  # and stored whole again


def test_a_field_a_newer_writer_added_is_no_reason_to_recompute(runs):
    experiment.run(LDAE, TINY, "digits", seed=5, progress=False)
    edit(cache.run_folder(LDAE, TINY, "digits", 5) / "result.json", lambda r: r.update(added_later=[1, 2]))
    assert experiment.run(LDAE, TINY, "digits", seed=5, progress=False).cached


def test_a_baseline_missing_a_field_is_recomputed_not_a_crash(runs):
    first = experiment.pixel_baseline("digits", TINY, progress=False)
    (path,) = runs.glob("baselines/*.json")
    edit(path, lambda b: b.pop("linear"))
    with pytest.warns(UserWarning, match="field 'linear' is missing; recomputing it"):
        assert experiment.pixel_baseline("digits", TINY, progress=False)["linear"] == first["linear"]


def test_the_training_code_is_part_of_every_key(runs, monkeypatch):
    """An edit on the training path (code_version.training_code_hash) makes every cached run, tokenizer and
    CNN a cache miss: nothing trained by other code is reused silently."""
    from ldae_lite import code_version
    from ldae_lite.recipes import STEPS

    conv = STEPS["dit_baseline"].recipe
    experiment.run(LDAE, TINY, "digits", seed=0, progress=False)
    before = (cache.run_key(LDAE, TINY, "digits", 0), cache.tokenizer_key(conv, TINY, "digits", 0),
              cache.cnn_path(TINY, "digits"))
    monkeypatch.setattr(code_version, "training_code_hash", lambda *a, **k: "edited")
    after = (cache.run_key(LDAE, TINY, "digits", 0), cache.tokenizer_key(conv, TINY, "digits", 0),
             cache.cnn_path(TINY, "digits"))
    assert all(a != b for a, b in zip(before, after))
    assert not cache.is_done(LDAE, TINY, "digits", 0)
    assert not experiment.run(LDAE, TINY, "digits", seed=0, progress=False).cached


def fits(monkeypatch) -> list:
    """Record each tokenizer that is built to be fitted (a cached one is loaded, not built)."""
    from ldae_lite import builders

    built, real = [], builders.tokenizers.make_tokenizer
    monkeypatch.setattr(builders.tokenizers, "make_tokenizer", lambda *a, **k: built.append(a[0]) or real(*a, **k))
    return built


def test_run_fresh_recomputes_everything_once(runs, monkeypatch):
    first = experiment.run(LDAE, TINY, "digits", seed=6, progress=False)
    built = fits(monkeypatch)
    again = experiment.run(LDAE, TINY, "digits", seed=6, progress=False, fresh=True)
    assert not again.cached and built == ["patch_pca"]  # the tokenizer fitted again, the denoiser trained again
    assert again.probe_accuracy == first.probe_accuracy  # from scratch, to the same numbers
    assert experiment.run(LDAE, TINY, "digits", seed=6, progress=False).cached  # what it stored is reused
    assert not (runs / ".fresh").exists() or not any((runs / ".fresh").iterdir())  # its claims are forgotten


def test_the_fresh_environment_switch_recomputes_each_file_once_per_process(runs, monkeypatch):
    experiment.run(LDAE, TINY, "digits", seed=7, progress=False)
    built = fits(monkeypatch)
    monkeypatch.setenv("LDAE_FRESH", "1")
    assert not cache.is_done(LDAE, TINY, "digits", 7)  # not reused before this session computed it
    assert not experiment.run(LDAE, TINY, "digits", seed=7, progress=False).cached
    assert experiment.run(LDAE, TINY, "digits", seed=7, progress=False).cached  # once per session
    experiment.load_model(LDAE, TINY, "digits", seed=7, device="cpu")
    assert built == ["patch_pca"] and cache.is_done(LDAE, TINY, "digits", 7)


def test_the_command_line_fresh_switch(runs, monkeypatch):
    """--fresh sets LDAE_FRESH=1 for the command (and the worker processes it starts)."""
    from ldae_lite import __main__ as cli

    seen = []

    def fake_run(*args, **kwargs):
        seen.append(os.environ.get("LDAE_FRESH"))
        return FakeRun()

    monkeypatch.setattr(experiment, "run", fake_run)
    monkeypatch.setenv("LDAE_FRESH", "0")
    assert cli.main(["run", "patch_pca", "--budget", "smoke", "--dataset", "digits", "--fresh"]) == 0
    assert seen == ["1"]


class FakeRun:
    probe_accuracy = knn_accuracy = train_seconds = images_per_s = 0.0


def test_load_model_reads_the_weights_run_trusts_and_retrains_when_they_are_not_finite(runs):
    experiment.run(LDAE, TINY, "digits", seed=8, progress=False)
    path = cache.run_folder(LDAE, TINY, "digits", 8) / "ckpt.pt"
    good = torch.load(path, weights_only=True)
    name = next(k for k, v in good["model"].items() if v.ndim == 2)
    broken = {**good, "model": {**good["model"], name: good["model"][name] * float("nan")}}
    torch.save(broken, path)
    with pytest.warns(Warning) as caught:
        _, _, model = experiment.load_model(LDAE, TINY, "digits", seed=8, device="cpu")
    said = " ".join(str(w.message) for w in caught)
    assert "values are not finite" in said and "training the run again" in said
    assert all(torch.equal(model.state_dict()[k], v) for k, v in good["model"].items())  # retrained, the same


def test_the_shipped_reports_and_levers_table_read_back_whole():
    from ldae_lite import levers, validate

    reports = sorted(cache.RESULTS_DIR.rglob("trajectory_*.json"))
    assert reports and all(validate.record(json.loads(p.read_text()), cache.REPORT_SCHEMA) == [] for p in reports)
    assert validate.record(json.loads((cache.RESULTS_DIR / "lecture" / "levers.json").read_text()), levers.SCHEMA) == []


def test_a_report_with_a_mistyped_field_is_left_out_with_a_warning(tmp_path):
    from _tiny import fake_report

    from ldae_lite import report

    good, bad = fake_report([1.0, 2.0], budget="smoke"), fake_report([1.0, 2.0], budget="full")
    bad["meta"]["seeds"], bad["steps"][1]["mean"] = "0,1", "62.1"
    cache.write_json(tmp_path / "trajectory_digits_smoke.json", good)
    cache.write_json(tmp_path / "trajectory_digits_full.json", bad)
    with pytest.warns(UserWarning, match=re.escape("trajectory_digits_full.json: field 'meta.seeds' is '0,1' (str), "
                                                   "expected a list (and 1 more); leaving it out")):
        found = report.find_reports("digits", folders=[tmp_path])
    assert [p.name for p, _ in found] == ["trajectory_digits_smoke.json"]
