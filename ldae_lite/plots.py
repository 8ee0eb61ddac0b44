"""Plots shared by the notebooks: the trajectory (Fig. 6) as two charts that cannot be misread, and image grids.

Our accuracies and the paper's are not on one scale (another dataset, a far smaller model), so no chart
sets our bar beside the paper's bar of the same step, where a shorter bar would read as a worse result.
What does compare is how each step moves the linear probe:

* :func:`plot_changes`: per step, our change from the previous step (mean over seeds, with the report's
  noise bar, :func:`ldae_lite.stats.noise_bar`) beside the paper's change, on one shared axis;
* :func:`plot_relative`: Fig. 6 as a line, each series relative to its own first step, so both start at 0
  and the shapes compare;
* :func:`plot_trajectory`: the two side by side (the notebooks' chart and the report's PNG).

``ours`` is a trajectory report (the dict of :func:`ldae_lite.trajectory.run`) or {step key: one
seed's accuracy, a list of per-seed accuracies, or a :class:`SeedMean`}. :func:`step_changes` and
:func:`relative_to_first` return what the charts draw, as data.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.transforms import ScaledTranslation

from .paper import TRAJECTORY, PaperStep
from .stats import mean_std, noise_bar

PAPER_COLOR = "tab:blue"
OURS_COLOR = "tab:orange"
NOT_LEGITIMATE = "0.5"  # gray step labels, as Fig. 6 marks the entries that use labels
PAPER_NAME = "paper (ImageNet-1k, DiT-L)"


# ------------------------------------------------------------------------------------------ our numbers
@dataclass(frozen=True)
class SeedMean:
    """Our probe accuracy (%) at one step: the mean over n seeds and their sample std (None for one seed)."""

    mean: float
    std: float | None
    n: int


def seed_mean(value) -> SeedMean:
    """One step's accuracy as a SeedMean: from a number (one seed), a list of per-seed accuracies (None
    entries skipped) or a SeedMean. A pair is a list of two seeds, never (mean, std)."""
    if isinstance(value, SeedMean):
        return value
    if isinstance(value, numbers.Real):
        return SeedMean(float(value), None, 1)
    if isinstance(value, Sequence) and not isinstance(value, str):
        values = [float(v) for v in value if v is not None]
        if values:
            mean, std = mean_std(values)
            return SeedMean(mean, std, len(values))
    raise ValueError(f"an accuracy must be a number, a non-empty list of per-seed accuracies or a SeedMean; "
                     f"got {value!r}")


def ours_by_step(ours, keys: Sequence[str]) -> dict[str, SeedMean]:
    """{step key: SeedMean} for the steps in ``keys``, from ``ours`` (see the module docstring; None: {}).

    A report's other steps are left out; a hand-made mapping with a key outside ``keys`` is an error (a
    typo would otherwise vanish from the chart)."""
    if ours is None:
        return {}
    if isinstance(ours, Mapping) and "steps" in ours:  # a trajectory report
        n = len(ours.get("meta", {}).get("seeds") or [0])
        out = {}
        for row in ours["steps"]:
            if row["key"] in keys and any(a is not None for a in row.get("accuracies") or ()):
                out[row["key"]] = seed_mean(row["accuracies"])
            elif row["key"] in keys and row.get("mean") is not None:  # a report without per-seed accuracies
                out[row["key"]] = SeedMean(float(row["mean"]), row.get("std"), n if row.get("std") else 1)
        return out
    if not isinstance(ours, Mapping):
        raise ValueError(f"ours must be a trajectory report or {{step key: accuracy}}; got {type(ours).__name__}")
    unknown = sorted(set(ours) - set(keys))
    if unknown:
        raise ValueError(f"ours has keys {unknown} that are not steps of the chart; known: {list(keys)}")
    return {k: seed_mean(v) for k, v in ours.items()}


def _noise(a: SeedMean, b: SeedMean) -> float | None:
    """The noise bar of the difference b.mean - a.mean (report.noise_bar; with unequal seed counts the
    smaller n, which overstates the bar rather than hide noise). None when a step has one seed."""
    return noise_bar(a.std, b.std, min(a.n, b.n))


# ------------------------------------------------------------------------------------------ as data
def _number(step: PaperStep, i: int) -> int:
    """The step's number in the paper's Fig. 6 (1..13), or its place ``i`` (from 0) in the chart for a
    step that is not one of Fig. 6's."""
    keys = [s.key for s in TRAJECTORY]
    return keys.index(step.key) + 1 if step.key in keys else i + 1


def _steps(paper_steps: Sequence[PaperStep]) -> list[PaperStep]:
    steps = list(paper_steps)
    if not steps:
        raise ValueError("paper_steps is empty: a chart needs at least one step of the trajectory")
    return steps


def step_changes(paper_steps: Sequence[PaperStep], ours=None) -> list[dict]:
    """Per step after the first of ``paper_steps``, the change from the step before it in that list.

    One dict per step: key, label, legitimate, since (the number in Fig. 6 of the step before it in the
    list), paper (the paper's change, points), ours (the change of our mean; None when ours lacks this
    step or the one before: a missing step is no bar, never a change over two steps), noise (two standard
    errors of our change, :func:`ldae_lite.stats.noise_bar`; None with one seed).
    """
    steps = _steps(paper_steps)
    mine = ours_by_step(ours, [s.key for s in steps])
    rows = []
    for i, (before, after) in enumerate(zip(steps, steps[1:])):
        a, b = mine.get(before.key), mine.get(after.key)
        both = a is not None and b is not None
        rows.append(dict(key=after.key, label=after.label, legitimate=after.legitimate, since=_number(before, i),
                         paper=after.accuracy - before.accuracy, ours=b.mean - a.mean if both else None,
                         noise=_noise(a, b) if both else None))
    return rows


def relative_to_first(paper_steps: Sequence[PaperStep], ours=None) -> dict:
    """Both series relative to one anchor step, so both start at 0 there (Fig. 6 as a line).

    The anchor is the first step of ``paper_steps`` that ours has (the first step when ours is empty).
    Returns anchor (its index), anchor_paper / anchor_ours (the accuracies there, %), and per step of
    ``paper_steps``: paper (points relative to the anchor), ours (None where ours lacks the step) and
    noise (the noise bar of our difference from the anchor; None with one seed and at the anchor).
    """
    steps = _steps(paper_steps)
    mine = ours_by_step(ours, [s.key for s in steps])
    anchor = next((i for i, s in enumerate(steps) if s.key in mine), 0)
    base = mine.get(steps[anchor].key)
    out = dict(anchor=anchor, anchor_paper=steps[anchor].accuracy, anchor_ours=base.mean if base else None,
               paper=[s.accuracy - steps[anchor].accuracy for s in steps], ours=[], noise=[])
    for i, s in enumerate(steps):
        m = mine.get(s.key)
        out["ours"].append(None if m is None else m.mean - base.mean)
        out["noise"].append(None if m is None or i == anchor else _noise(base, m))
    return out


# ------------------------------------------------------------------------------------------ charts
def _step_axis(ax, steps: list[PaperStep], labels: bool = True):
    """Steps top to bottom, as Fig. 6: numbered labels, gray where the step uses labels."""
    ax.set_yticks(np.arange(len(steps)), [f"{_number(s, i)}. {s.label}" for i, s in enumerate(steps)] if labels
                  else [])
    for tick, s in zip(ax.get_yticklabels(), steps):
        tick.set_color("black" if s.legitimate else NOT_LEGITIMATE)
    ax.set_ylim(len(steps) - 0.5, -0.5)
    ax.axvline(0, color="0.3", lw=0.8, zorder=1)
    ax.grid(axis="x", color="0.9", zorder=0)


def _ours_name(ours, steps: list[PaperStep]) -> str:
    """'ours (dataset, how many seeds)' for the legends; the dataset when ours is a report."""
    dataset = ours.get("meta", {}).get("dataset") if isinstance(ours, Mapping) and "steps" in ours else None
    counts = sorted({m.n for m in ours_by_step(ours, [s.key for s in steps]).values()})
    seeds = ("one seed: no noise bar" if counts == [1] else
             f"mean of {counts[0]} seeds" if len(counts) == 1 else f"mean of {counts[0]}-{counts[-1]} seeds")
    return f"ours ({dataset + ', ' if dataset else ''}{seeds})"


def _label_bars(ax, y, values, errors, color, fmt):
    """The signed value beyond each bar's end (and beyond its error bar)."""
    pad = 0.012 * max((abs(v) + (e or 0) for v, e in zip(values, errors)), default=1.0) + 0.03
    for yi, v, e in zip(y, values, errors):
        ax.text(v + np.sign(v or 1) * ((e or 0) + pad), yi, format(v, fmt), va="center", fontsize=7,
                ha="left" if v >= 0 else "right", color=color)


def _error_bars(ax, x, y, errors, label=None):
    """Black horizontal error bars where an error is known (None: one seed, no bar drawn)."""
    keep = [i for i, e in enumerate(errors) if e is not None]
    if keep:
        ax.errorbar([x[i] for i in keep], [y[i] for i in keep], xerr=[errors[i] for i in keep], fmt="none",
                    ecolor="black", elinewidth=1, capsize=2.5, zorder=4, label=label)


def _legend_below(ax):
    """The legend under the x label (half an inch below the axes, whatever their size), so that it never
    covers a bar or a point."""
    below = ax.transAxes + ScaledTranslation(0, -0.5, ax.figure.dpi_scale_trans)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, 0), bbox_transform=below, frameon=False)


def _pad_xlim(ax, values):
    lo, hi = min([0.0, *values]), max([0.0, *values])
    pad = 0.22 * (hi - lo) or 1.0
    ax.set_xlim(lo - pad, hi + pad)


def plot_changes(paper_steps: Sequence[PaperStep], ours=None, ax: plt.Axes | None = None) -> plt.Axes:
    """Grouped horizontal bars, one group per step: the paper's change from the previous step and ours
    (with its noise bar), on one shared axis of accuracy points. The first step has no change: its row
    stays empty, so the rows line up with :func:`plot_relative`. A change over more than one of the
    paper's steps (a step left out of ``paper_steps``) says since which step. Returns the Axes."""
    steps = _steps(paper_steps)
    rows = step_changes(steps, ours)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.42 * len(steps) + 1.6))
    y = np.arange(1, len(steps), dtype=float)
    has = [i for i, r in enumerate(rows) if r["ours"] is not None]
    h = 0.38 if has else 0.6
    y_paper, y_ours = (y - h / 2, y + h / 2) if has else (y, y)
    paper = [r["paper"] for r in rows]
    ax.barh(y_paper, paper, height=h, color=PAPER_COLOR, label=PAPER_NAME, zorder=2)
    _label_bars(ax, y_paper, paper, [None] * len(rows), PAPER_COLOR, "+.1f")
    ends = list(paper)
    if has:
        mine, noise = [rows[i]["ours"] for i in has], [rows[i]["noise"] for i in has]
        ax.barh(y_ours[has], mine, height=h, color=OURS_COLOR, label=_ours_name(ours, steps), zorder=2)
        _error_bars(ax, mine, y_ours[has], noise, "our noise bar: 2 standard errors of the change")
        _label_bars(ax, y_ours[has], mine, noise, "black", "+.2f")
        ends += [m + s * (e or 0) for m, e in zip(mine, noise) for s in (-1, 1)]
        for i in sorted(set(range(len(rows))) - set(has)):  # a missing step is no bar, which is not 0
            ax.text(0, y_ours[i], " ours: a step is missing", va="center", fontsize=7, color="0.4")
    _step_axis(ax, steps)
    _pad_xlim(ax, ends)
    for yi, r in zip(y, rows):
        if r["since"] != _number(steps[int(yi)], int(yi)) - 1:
            ax.text(0.99, yi, f"since step {r['since']}", transform=ax.get_yaxis_transform(), ha="right",
                    va="center", fontsize=7, color="0.4")
    ax.text(0, 0, "  first step: no change", va="center", fontsize=7, color="0.4")
    ax.set_xlabel("change from the previous step (accuracy points)")
    gray = "" if all(s.legitimate for s in steps) else "\n(gray: the step uses labels)"
    ax.set_title(f"Each step's change{gray}", fontsize=9)
    _legend_below(ax)
    return ax


def plot_relative(paper_steps: Sequence[PaperStep], ours=None, ax: plt.Axes | None = None,
                  labels: bool = True) -> plt.Axes:
    """Fig. 6 as a line, steps top to bottom: each series minus its own accuracy at the first step we have
    (see :func:`relative_to_first`), so both start at 0 and the shapes compare; ours with the noise bar
    of each difference, its line broken where a step is missing. labels=False leaves out the step names
    (when a chart on the left has them). Returns the Axes."""
    steps = _steps(paper_steps)
    r = relative_to_first(steps, ours)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.42 * len(steps) + 1.6))
    y = np.arange(len(steps), dtype=float)
    first = _number(steps[r["anchor"]], r["anchor"])
    ax.plot(r["paper"], y, "-", color=PAPER_COLOR, zorder=3)
    ax.plot(r["paper"], y, "o", color=PAPER_COLOR, ms=5, zorder=3,
            label=f"{PAPER_NAME}; at step {first}: {r['anchor_paper']:.1f}%")
    ends = list(r["paper"])
    has = [i for i, v in enumerate(r["ours"]) if v is not None]
    if has:
        for run in np.split(np.array(has), np.flatnonzero(np.diff(has) > 1) + 1):  # consecutive steps
            ax.plot([r["ours"][i] for i in run], y[run], "-", color=OURS_COLOR, zorder=3)
        ax.plot([r["ours"][i] for i in has], y[has], "s", color=OURS_COLOR, ms=5, zorder=3,
                label=f"{_ours_name(ours, steps)}; at step {first}: {r['anchor_ours']:.2f}%")
        _error_bars(ax, r["ours"], y, r["noise"])
        ends += [r["ours"][i] + s * (r["noise"][i] or 0) for i in has for s in (-1, 1)]
    _step_axis(ax, steps, labels)
    _pad_xlim(ax, ends)
    ax.set_xlabel(f"accuracy minus its own at step {first} (points)")
    ax.set_title(f"Fig. 6's shape: each from its step {first}", fontsize=9)
    _legend_below(ax)
    return ax


def plot_trajectory(paper_steps: Sequence[PaperStep], ours=None, ax=None) -> plt.Axes:
    """:func:`plot_changes` and :func:`plot_relative` side by side, the step names once, on the left.

    ax: None (a new figure), one Axes (its place in the figure is split in two) or a pair of Axes.
    Returns the left Axes (``.figure`` is the figure)."""
    steps = _steps(paper_steps)
    if ax is None:
        _, (left, right) = plt.subplots(1, 2, figsize=(13, 0.42 * len(steps) + 1.8),
                                        gridspec_kw=dict(width_ratios=[1.15, 1]))  # no wspace: tight_layout sets it
    elif isinstance(ax, plt.Axes):
        spec, fig = ax.get_subplotspec(), ax.figure
        if spec is None:
            raise ValueError("ax must be a subplot (made by add_subplot or subplots) so its place can be split")
        ax.remove()
        inner = spec.subgridspec(1, 2, width_ratios=[1.15, 1], wspace=0.06)
        left, right = fig.add_subplot(inner[0]), fig.add_subplot(inner[1])
    else:
        left, right = ax
    plot_changes(steps, ours, left)
    plot_relative(steps, ours, right, labels=False)
    return left


# ------------------------------------------------------------------------------------------ images
def to_display(img: torch.Tensor | np.ndarray) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> (H, W) or (H, W, 3) in [0, 1] for imshow (clipped: noise leaves the range)."""
    x = torch.as_tensor(img).detach().float().cpu().clamp(-1, 1).add(1).div(2)
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def image_grid(images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], per_class: int = 8,
               ax: plt.Axes | None = None) -> plt.Axes:
    """One row per class with its first ``per_class`` images. images: (N, C, H, W) in [-1, 1]."""
    if images.ndim != 4 or len(images) != len(labels):
        raise ValueError(f"expected images (N, C, H, W) with N labels, got {tuple(images.shape)} and "
                         f"{len(labels)} labels")
    _, c, h, w = images.shape
    canvas = torch.full((c, len(classes) * h, per_class * w), 1.0)  # white where a class has too few images
    for k in range(len(classes)):
        picks = torch.nonzero(labels == k).flatten()[:per_class]
        for j, i in enumerate(picks.tolist()):
            canvas[:, k * h:(k + 1) * h, j * w:(j + 1) * w] = images[i]
    if ax is None:
        _, ax = plt.subplots(figsize=(per_class * 0.8 + 1.5, len(classes) * 0.8))
    ax.imshow(to_display(canvas), cmap="gray" if c == 1 else None, vmin=0, vmax=1)
    ax.set_yticks(np.arange(len(classes)) * h + h / 2, list(classes))
    ax.set_xticks([])
    return ax
