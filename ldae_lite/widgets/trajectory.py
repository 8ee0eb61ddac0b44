"""The trajectory viewer (arXiv 2401.14404, Fig. 6): ours beside the paper's for chosen steps, as
:func:`ldae_lite.plots.plot_trajectory` draws it (each step's change, and each series relative to its own
first step), with a strip of images per step when given.

:func:`trajectory_rows` reads our numbers, :func:`trajectory_view` draws them, :func:`explore_trajectory`
puts a step selector in front.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import matplotlib.pyplot as plt
import torch

from .. import paper, plots
from ._common import _imshow, _interactive, _show


def _is_report(report) -> bool:
    return isinstance(report, Mapping) and "steps" in report


def trajectory_rows(report) -> dict[str, plots.SeedMean]:
    """{step key: plots.SeedMean} from a trajectory report dict (``report['steps']``), or from a list of
    experiment.Result objects / dicts (matched to trajectory steps by key or by recipe; seeds averaged)."""
    from ..recipes import TRAJECTORY

    if _is_report(report):
        return plots.ours_by_step(report, tuple(paper.STEPS))
    by_recipe = {tuple(sorted(dataclasses.asdict(s.recipe).items())): s.key for s in TRAJECTORY}
    values: dict[str, list[float]] = {}
    for res in report:
        res = dataclasses.asdict(res) if dataclasses.is_dataclass(res) else dict(res)
        key = res.get("key") if res.get("key") in paper.STEPS else by_recipe.get(tuple(sorted(res["recipe"].items())))
        if key is not None:
            values.setdefault(key, []).append(float(res["probe_accuracy"] if "probe_accuracy" in res else res["mean"]))
    if not values:
        raise ValueError("no entry of the report matches a trajectory step (by key or by recipe)")
    return {k: plots.seed_mean(v) for k, v in values.items()}


def trajectory_view(report, keys=None, sample_images: Callable | None = None, n_images: int = 8):
    """Ours vs the paper's linear-probe numbers for the chosen steps (plots.plot_trajectory), and, when
    ``sample_images(key) -> (N, C, H, W) in [-1, 1] or None`` is given, a strip of images per step."""
    ours = trajectory_rows(report)
    keys = list(keys) if keys else [s.key for s in paper.TRAJECTORY if s.key in ours]
    unknown = [k for k in keys if k not in paper.STEPS]
    if unknown:
        raise ValueError(f"keys {unknown} are not trajectory steps; known: {tuple(paper.STEPS)}")
    steps = [s for s in paper.TRAJECTORY if s.key in keys]
    ours = report if _is_report(report) else {k: v for k, v in ours.items() if k in keys}  # a report names its data
    if sample_images is None:
        return plots.plot_trajectory(steps, ours).figure
    fig = plt.figure(figsize=(13 + 0.6 * n_images, 0.5 * len(steps) + 1.8))
    grid = fig.add_gridspec(len(steps), 3, width_ratios=[7, 6, 0.6 * n_images], wspace=0.06)
    plots.plot_trajectory(steps, ours, ax=(fig.add_subplot(grid[:, 0]), fig.add_subplot(grid[:, 1])))
    for i, step in enumerate(steps):
        ax = fig.add_subplot(grid[i, 2])
        imgs = sample_images(step.key)
        if imgs is None:
            ax.axis("off")
            continue
        imgs = torch.as_tensor(imgs).float()[:n_images]
        _imshow(ax, torch.cat(list(imgs), dim=-1))  # (C, H, n W)
    return fig


def explore_trajectory(report, sample_images: Callable | None = None, display: bool = True):
    """Pick steps (multi-select; shift/ctrl-click) and see ours beside the paper's, with samples if given."""
    import ipywidgets as W

    ours = trajectory_rows(report)
    options = [(f"{i + 1}. {s.label}", s.key) for i, s in enumerate(paper.TRAJECTORY) if s.key in ours]
    select = W.SelectMultiple(options=options, value=tuple(k for _, k in options), rows=min(13, len(options)),
                              description="steps", layout=W.Layout(width="60%"))
    return _interactive(lambda keys: _show(trajectory_view(report, keys or None, sample_images)), display, keys=select)
