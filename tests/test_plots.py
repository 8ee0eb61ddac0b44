"""The trajectory charts: what they compute (checked against the report's own deltas and noise test) and
what they draw (counted on the matplotlib artists), on a shipped report and on partial data."""

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.container import BarContainer, ErrorbarContainer  # noqa: E402

from ldae_lite import plots, report, stats  # noqa: E402
from ldae_lite.paper import TRAJECTORY  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[1] / "results" / "lecture" / "trajectory_fashion-mnist-m_lecture.json"


@pytest.fixture(scope="module")
def rep():
    return json.loads(SHIPPED.read_text())


def bars(ax, label_start):
    """The number of bars in the bar series whose legend label starts with ``label_start``."""
    found = [c for c in ax.containers if isinstance(c, BarContainer) and c.get_label().startswith(label_start)]
    return sum(len(c) for c in found)


def error_bars(ax) -> int:
    return sum(len(c.lines[2][0].get_segments()) for c in ax.containers if isinstance(c, ErrorbarContainer))


def points(ax, color, marker) -> int:
    return sum(len(line.get_xdata()) for line in ax.lines if line.get_color() == color and line.get_marker() == marker)


def texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_changes_agree_with_the_report(rep):
    rows = plots.step_changes(TRAJECTORY, rep)
    assert [r["key"] for r in rows] == [s.key for s in TRAJECTORY[1:]]
    n = len(rep["meta"]["seeds"])
    for r, before, after in zip(rows, rep["steps"], rep["steps"][1:]):
        assert r["ours"] == pytest.approx(after["delta"]) and r["paper"] == pytest.approx(after["paper_delta"])
        assert r["noise"] == pytest.approx(stats.noise_bar(before["std"], after["std"], n))  # the same noise bar
        assert (abs(r["ours"]) <= r["noise"]) == after["within_noise"]


def test_plot_changes_on_a_report(rep):
    ax = plots.plot_changes(TRAJECTORY, rep)
    assert bars(ax, "paper") == 12 and bars(ax, "ours") == 12 and error_bars(ax) == 12
    assert "ours (fashion-mnist-m, mean of 3 seeds)" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_xlim()[0] < min(r["paper"] for r in plots.step_changes(TRAJECTORY, rep)) < 0  # one axis for both


def test_plot_changes_on_partial_data():
    """One seed (no noise bar), a missing step (no bar either side of it, and says so)."""
    ours = {"dit_baseline": 60.0, "no_class_cond": 61.0, "no_adversarial": 59.5}  # no_perceptual missing
    ax = plots.plot_changes(TRAJECTORY[:4], ours)
    assert bars(ax, "paper") == 3 and bars(ax, "ours") == 1 and error_bars(ax) == 0
    assert texts(ax).count(" ours: a step is missing") == 2
    rows = plots.step_changes(TRAJECTORY[:4], ours)
    assert rows[0]["ours"] == pytest.approx(1.0) and rows[0]["noise"] is None and rows[1]["ours"] is None


def test_a_skipped_step_says_since_which():
    steps = [TRAJECTORY[0], TRAJECTORY[1], TRAJECTORY[7]]
    ax = plots.plot_changes(steps, {"dit_baseline": [60.0, 61.0], "no_class_cond": [62.0, 62.5],
                                    "patch_pca": [63.0, 64.0]})
    assert "since step 2" in texts(ax) and "since step 1" not in texts(ax)
    assert plots.step_changes(steps)[1]["paper"] == pytest.approx(TRAJECTORY[7].accuracy - TRAJECTORY[1].accuracy)


def test_relative_starts_both_at_zero(rep):
    r = plots.relative_to_first(TRAJECTORY, rep)
    assert r["anchor"] == 0 and r["paper"][0] == 0 and r["ours"][0] == 0 and r["noise"][0] is None
    assert r["ours"][-1] == pytest.approx(rep["steps"][-1]["mean"] - rep["steps"][0]["mean"])
    assert r["paper"][-1] == pytest.approx(TRAJECTORY[-1].accuracy - TRAJECTORY[0].accuracy)
    ax = plots.plot_relative(TRAJECTORY, rep)
    assert points(ax, plots.PAPER_COLOR, "o") == 13 and points(ax, plots.OURS_COLOR, "s") == 13
    assert error_bars(ax) == 12  # every step but the anchor


def test_relative_on_partial_data():
    """Ours lacks step 1 and step 3: both series are anchored at step 2, ours' line breaks at step 3."""
    ours = {"no_class_cond": 61.0, "no_adversarial": 59.5, "linear_gamma2": 60.0}
    r = plots.relative_to_first(TRAJECTORY[:5], ours)
    assert r["anchor"] == 1 and r["paper"][1] == 0 and r["ours"][1] == 0
    assert r["ours"][0] is None and r["ours"][2] is None and r["ours"][4] == pytest.approx(-1.0)
    ax = plots.plot_relative(TRAJECTORY[:5], ours)
    assert points(ax, plots.PAPER_COLOR, "o") == 5 and points(ax, plots.OURS_COLOR, "s") == 3 and error_bars(ax) == 0
    ours_lines = [line for line in ax.lines if line.get_color() == plots.OURS_COLOR and line.get_marker() == "None"]
    assert [len(line.get_xdata()) for line in ours_lines] == [1, 2]  # step 2 alone, then steps 4-5


def test_plot_trajectory_callers(rep):
    """As notebooks 00 (paper only), 03-07 ({key: accuracy}), report.save (a report) and the widgets
    (into an Axes of their figure, or a pair) call it."""
    ax = plots.plot_trajectory(TRAJECTORY)
    assert len(ax.figure.axes) == 2 and bars(ax, "paper") == 12 and bars(ax, "ours") == 0
    ax = plots.plot_trajectory(TRAJECTORY[:4], {s.key: 80.0 + i for i, s in enumerate(TRAJECTORY[:4])})
    assert bars(ax, "ours") == 3
    fig = plt.figure()
    grid = fig.add_gridspec(1, 2)
    fig.add_subplot(grid[0, 1])
    ax = plots.plot_trajectory(TRAJECTORY, rep, ax=fig.add_subplot(grid[0, 0]))
    assert len(fig.axes) == 3 and ax.figure is fig
    pair = plt.subplots(1, 2)[1]
    assert plots.plot_trajectory(TRAJECTORY, rep, ax=pair) is pair[0]


def test_ours_values_and_errors():
    assert plots.seed_mean(60) == plots.SeedMean(60.0, None, 1)
    assert plots.seed_mean([60.0, None, 62.0]) == plots.SeedMean(61.0, pytest.approx(math.sqrt(2)), 2)
    with pytest.raises(ValueError, match="'x'"):
        plots.seed_mean("x")
    with pytest.raises(ValueError, match="nope"):
        plots.plot_changes(TRAJECTORY[:3], {"nope": 1.0})
    with pytest.raises(ValueError, match="paper_steps is empty"):
        plots.plot_trajectory([])
    a, b = plots.SeedMean(60.0, 1.0, 3), plots.SeedMean(61.0, 1.0, 2)  # unequal seeds: the smaller n
    assert plots._noise(a, b) == pytest.approx(stats.noise_bar(1.0, 1.0, 2))


def test_report_save_writes_the_chart(rep, tmp_path):
    paths = report.save(rep, tmp_path)
    assert paths["png"].read_bytes().startswith(b"\x89PNG")
