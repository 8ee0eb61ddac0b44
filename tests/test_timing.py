"""timing: phases counted once however they nest, recorders that nest, a breakdown that adds up; a run
keeps its phases in its result (and a result stored before timings were kept still reads)."""

import json
import time

import pytest
from _tiny import TINY

from ldae_lite import cache, experiment, timing
from ldae_lite.recipes import STEPS


def test_nested_phases_count_once_and_every_open_recorder_sees_them():
    with timing.record() as outer:
        with timing.phase("tokenizers"):
            time.sleep(0.05)
            with timing.record() as inner, timing.phase("data"):
                time.sleep(0.1)
        timing.cached("cnn")
    assert inner.seconds.keys() == {"data"} and inner.seconds["data"] == pytest.approx(0.1, abs=0.05)
    assert outer.seconds["data"] == inner.seconds["data"]
    assert outer.seconds["tokenizers"] == pytest.approx(0.05, abs=0.04)  # its data's seconds are not its own
    assert outer.cached == {"cnn"} and not inner.cached
    timing.add({"seconds": {"data": 1.0}})  # no recorder open: counted nowhere, no error
    assert outer.seconds["data"] < 1.0


def test_add_counts_a_workers_phases():
    with timing.record() as rec:
        timing.add({"seconds": {"training": 2.0}, "cached": ["cnn"]})
        timing.add({"seconds": {"training": 1.0, "probes": 0.5}, "cached": []})
    assert rec.as_dict() == {"seconds": {"training": 3.0, "probes": 0.5}, "cached": ["cnn"]}


def test_an_unknown_phase_is_named():
    with pytest.raises(ValueError, match="unknown phase 'trainig'.*'training'"):
        with timing.phase("trainig"):
            pass


def test_breakdown_in_one_process_shares_the_wall_time():
    phases = timing.Phases({"training": 6.0, "data": 1.0}, {"cnn", "data"})
    tb = timing.breakdown(phases, wall=10.0)
    assert list(tb["phases"]) == list(timing.BREAKDOWN)
    assert tb["worker_seconds"] == 10.0 and tb["busy_percent"] is None and tb["workers"] == 1
    assert tb["phases"]["other"]["seconds"] == pytest.approx(3.0) and tb["phases"]["workers_idle"]["seconds"] == 0
    assert tb["phases"]["training"]["percent"] == pytest.approx(60.0)
    assert sum(p["percent"] for p in tb["phases"].values()) == pytest.approx(100.0)
    assert tb["phases"]["cnn"]["cached"] and not tb["phases"]["data"]["cached"]  # data took time after all


def test_breakdown_of_a_parallel_trajectory_counts_worker_seconds():
    # 2 s alone, then 8 s of two workers busy 14 of their 16 s: 18 worker-seconds to share
    phases = timing.Phases({"training": 12.0, "tokenizers": 1.0, "probes": 1.5})
    tb = timing.breakdown(phases, wall=10.0, workers=2, pool_wall=8.0, busy=14.0)
    assert tb["worker_seconds"] == pytest.approx(18.0) and tb["busy_percent"] == pytest.approx(87.5)
    assert tb["phases"]["workers_idle"]["seconds"] == pytest.approx(2.0)
    assert tb["phases"]["other"]["seconds"] == pytest.approx(18.0 - 14.5 - 2.0)
    assert sum(p["seconds"] for p in tb["phases"].values()) == pytest.approx(tb["worker_seconds"])


def test_a_run_keeps_its_phases_and_an_old_result_still_reads(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("LDAE_RUNS", str(tmp_path))
    recipe = STEPS["dit_baseline"].recipe  # a tokenizer trained by gradient, and sampling
    start = time.perf_counter()
    r = experiment.run(recipe, TINY, "digits", seed=0, generate=True, progress=False)
    wall = time.perf_counter() - start
    assert set(r.timings) == set(timing.PHASES)
    assert r.timings["training"] >= 0.9 * r.train_seconds
    assert sum(r.timings.values()) <= wall  # no second counted twice
    path = cache.run_folder(recipe, TINY, "digits", 0) / "result.json"
    stored = json.loads(path.read_text())
    del stored["timings"]  # as written before timings were kept
    path.write_text(json.dumps(stored))
    with timing.record() as rec:
        again = experiment.run(recipe, TINY, "digits", seed=0, generate=True, progress=False)
    assert again.cached and again.timings == {} and again.probe_accuracy == r.probe_accuracy
    assert rec.seconds == {} and {"training", "features", "probes", "sampling"} <= rec.cached
