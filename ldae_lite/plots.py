"""Plots shared by the notebooks: the paper's trajectory (Fig. 6) beside ours, and image grids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .paper import PaperStep

PAPER_COLOR = "tab:blue"
OURS_COLOR = "tab:orange"
NOT_LEGITIMATE = "0.65"  # gray, as Fig. 6 marks the entries that use labels


def _mean_std(value) -> tuple[float, float]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"expected an accuracy or (mean, std), got {value!r}")
        return float(value[0]), float(value[1])
    return float(value), 0.0


def plot_trajectory(paper_steps: Sequence[PaperStep], ours: Mapping[str, float | tuple[float, float]] | None = None,
                    ax: plt.Axes | None = None) -> plt.Axes:
    """Horizontal bars of the paper's linear-probe accuracy per step, top to bottom (like Fig. 6).

    ours: optional {step key: accuracy} or {step key: (mean, std)}; drawn as a thinner bar under each
    paper bar, on its own x-axis at the top (our dataset's scale differs from ImageNet's). Steps that are
    not legitimate self-supervised entries (they use labels) are gray. Returns the paper's axes.
    """
    steps = list(paper_steps)
    keys = [s.key for s in steps]
    ours = dict(ours or {})
    unknown = sorted(set(ours) - set(keys))
    if unknown:
        raise ValueError(f"ours has keys {unknown} that are not steps of the trajectory; known: {keys}")
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.45 * len(steps) + 1.2))
    y = np.arange(len(steps))
    height = 0.42 if ours else 0.7
    shift = height / 2 if ours else 0.0

    # 1. The paper's bars, with their values.
    acc = np.array([s.accuracy for s in steps])
    colors = [PAPER_COLOR if s.legitimate else NOT_LEGITIMATE for s in steps]
    lo, hi = np.floor(acc.min()) - 4, np.ceil(acc.max()) + 3
    ax.barh(y - shift, acc - lo, left=lo, height=height, color=colors, label="paper (ImageNet-1k)")
    for yi, a in zip(y - shift, acc):
        ax.text(a + 0.15, yi, f"{a:.1f}", va="center", fontsize=8)
    ax.set_xlim(lo, hi)
    ax.set_yticks(y, [s.label for s in steps])
    ax.invert_yaxis()
    ax.set_xlabel("paper: linear-probe top-1 % (ImageNet-1k, DiT-L)", color=PAPER_COLOR)

    # 2. Ours, on a second x-axis with its own range, under each paper bar.
    if ours:
        twin = ax.twiny()
        rows = [(i, *_mean_std(ours[k])) for i, k in enumerate(keys) if k in ours]
        idx = np.array([r[0] for r in rows])
        mean = np.array([r[1] for r in rows])
        std = np.array([r[2] for r in rows])
        o_lo = np.floor((mean - std).min()) - 2
        o_hi = np.ceil((mean + std).max()) + 2
        o_colors = [OURS_COLOR if steps[i].legitimate else NOT_LEGITIMATE for i in idx]
        twin.barh(y[idx] + shift, mean - o_lo, left=o_lo, height=height, color=o_colors, hatch="//",
                  edgecolor="white", xerr=std if (std > 0).any() else None, label="ours")
        for yi, m, sd in zip(y[idx] + shift, mean, std):
            twin.text(m + sd + 0.1, yi, f"{m:.1f}", va="center", fontsize=8, color=OURS_COLOR)
        twin.set_xlim(o_lo, o_hi)
        twin.set_xlabel("ours: linear-probe top-1 %", color=OURS_COLOR)
        twin.set_ylim(ax.get_ylim())
    ax.set_title("Trajectory of arXiv 2401.14404 (Fig. 6); gray: uses labels", fontsize=10)
    return ax


def _to_numpy_image(img: torch.Tensor | np.ndarray) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> (H, W) or (H, W, 3) in [0, 1] for imshow."""
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
    ax.imshow(_to_numpy_image(canvas), cmap="gray" if c == 1 else None, vmin=0, vmax=1)
    ax.set_yticks(np.arange(len(classes)) * h + h / 2, list(classes))
    ax.set_xticks([])
    return ax
