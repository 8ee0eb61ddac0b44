"""cache: atomic writes (the one mechanism, checkpoint.atomic_write), damaged files, keys, is_done."""

import pytest
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
