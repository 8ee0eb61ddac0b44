"""report: a trajectory report as Markdown (the shipped files are reproduced to the byte; a report's time
breakdown goes under its table), written, found and chosen."""

import json

import pytest
from _tiny import fake_report

from ldae_lite import cache, report, timing


def test_to_markdown_reproduces_the_shipped_reports():
    shipped = sorted(cache.RESULTS_DIR.glob("*/trajectory_*.json"))
    assert shipped
    for path in shipped:
        assert report.to_markdown(json.loads(path.read_text())) == path.with_suffix(".md").read_text(), path


def test_trajectory_markdown_marks_disagreement():
    md = report.trajectory_markdown(fake_report([85.0, 84.0, 84.5, 84.7, 84.6, 85.2]))
    assert md.count("\n") == 2 + 6 and "**no**" in md
    lines = md.splitlines()
    assert "(paper: 0)" not in lines[2] and "(paper: 0)" in lines[5]  # first row: nothing to compare; row 4: 0.0


def with_time_breakdown(rep: dict, workers: int) -> dict:
    phases = timing.Phases({"training": 40.0, "tokenizers": 5.0, "data": 1.0}, {"cnn", "data"})
    pool = dict(workers=2, pool_wall=25.0, busy=47.0) if workers == 2 else {}
    rep["meta"]["time_breakdown"] = timing.breakdown(phases, 60.0 if workers == 1 else 30.0, **pool)
    return rep


def test_the_time_breakdown_goes_under_the_table():
    rep = with_time_breakdown(fake_report([85.0, 86.0]), workers=2)
    rep["meta"]["runs_trained"] = 1
    md = report.to_markdown(rep)
    assert md.startswith(report.to_markdown(fake_report([85.0, 86.0])))  # the table, then the breakdown
    tail = md.split("Where the time went: ")[1]
    assert tail.startswith("wall time 30 s, 2 workers in parallel (55 s of worker time")
    assert "workers busy 94% of their time; 1 of 2 runs trained" in tail
    header, _, cells = tail.strip().splitlines()[-3:]
    assert header == "| " + " | ".join(report.PHASE_NAMES[p] for p in timing.BREAKDOWN) + " |"
    assert cells.startswith("| 1.0 s (2%) | cached | 5.0 s (9%) | 40 s (73%) | 0.0 s (0%) |")
    assert report.time_summary(rep) == ("time: 30 s wall, workers busy 94%; denoiser training 73%, "
                                        "other 11%, tokenizers 9%, workers idle 5%, data 2%")
    assert report.trajectory_markdown(rep).endswith(md[md.index("Where the time went"):])  # the notebook's too
    one = with_time_breakdown(fake_report([85.0]), workers=1)
    assert "workers" not in report.to_markdown(one).split("Where the time went: ")[1].splitlines()[0]
    assert report.time_summary(one).startswith("time: 1.0 min wall; denoiser training 67%")


def test_save_writes_json_markdown_and_chart(tmp_path):
    rep = fake_report([85.0, 86.0])
    paths = report.save(rep, tmp_path / "out")
    assert paths["json"].name == "trajectory_digits_lecture.json" and json.loads(paths["json"].read_text()) == rep
    assert paths["md"].read_text() == report.to_markdown(rep) and paths["png"].stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths.values())  # no tmp


def test_find_reports(tmp_path):
    folder = tmp_path / "results" / "sub"
    folder.mkdir(parents=True)
    for budget in ("smoke", "full"):
        cache.write_json(folder / f"trajectory_digits_{budget}.json", fake_report([1.0, 2.0], budget=budget))
    (folder / "trajectory_digits_broken.json").write_text("{}")
    (folder / "trajectory_other_full.json").write_text("{}")
    longer = fake_report([1.0, 2.0], budget="full")
    longer["meta"]["overrides"] = {"steps": 9000}
    cache.write_json(folder / "trajectory_digits_full_steps9000.json", longer)  # sorts before "full.json"
    with pytest.warns(UserWarning, match="trajectory_digits_broken.json: field 'meta' is missing"):
        found = report.find_reports("digits", folders=[tmp_path / "results", tmp_path / "missing"])
    assert [(p.name, rep["meta"]["budget"]) for p, rep in found] == [
        ("trajectory_digits_full.json", "full"), ("trajectory_digits_full_steps9000.json", "full"),
        ("trajectory_digits_smoke.json", "smoke")]


def test_best_report_prefers_complete_then_larger_budget():
    full_partial = fake_report([1.0, 2.0], budget="full")
    smoke_complete = fake_report([1.0] * 13, budget="smoke")
    lecture_complete = fake_report([1.0] * 13, budget="lecture")
    assert report.best_report([("a", full_partial), ("b", smoke_complete)])[0] == "b"
    assert report.best_report([("b", smoke_complete), ("c", lecture_complete)])[0] == "c"
    assert report.best_report([("a", full_partial)])[0] == "a"
    longer = fake_report([1.0] * 13, budget="lecture")
    longer["meta"]["overrides"] = {"steps": 1200}  # `--train-steps 1200`: read after the preset itself
    assert report.best_report([("d", longer), ("c", lecture_complete)])[0] == "c"
    with pytest.raises(ValueError):
        report.best_report([])


def test_report_training():
    rep = fake_report([1.0, 2.0])
    assert report.report_training(rep) == "1200 steps of 128"
    rep["meta"]["overrides"] = {"steps": 4800}
    assert report.report_training(rep) == "4800 steps of 128"
    rep["meta"]["overrides"] = {"steps": 300, "batch_size": 256}
    assert report.report_training(rep) == "300 steps of 256"
    rep["meta"]["budget"] = "custom"
    rep["meta"]["overrides"] = {}
    assert report.report_training(rep) == "budget custom"
