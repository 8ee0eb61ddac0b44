"""The schedule explorer (arXiv 2401.14404, Fig. 3): gamma_t^2 of DDPM's linear-beta schedule against the
schedule linear in gamma^2 (Sec. 4.1), and images noised under both at one t.

:func:`schedule_curves` and :func:`schedule_noising` return data, :func:`plot_schedules` and
:func:`plot_schedule_noising` draw it, :func:`explore_schedule` puts a t slider in front.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..noise import NoiseSchedule, T, gamma2_table, share_below
from ._common import _imshow, _interactive, _show

SCHEDULE_LABELS = {"ddpm_linear_beta": "DDPM linear beta (original)", "linear_gamma2": "linear gamma^2 (Sec. 4.1)"}


def schedule_curves(steps: int = T, level: float = 0.5) -> dict:
    """Fig. 3 as data: t (T,), gamma^2 per schedule (T,), and the share of steps with gamma^2 < level."""
    curves = {k: gamma2_table(k, steps).numpy() for k in SCHEDULE_LABELS}
    return dict(t=np.arange(steps), gamma2=curves, level=level,
                share={k: share_below(torch.from_numpy(v), level) for k, v in curves.items()})


def plot_schedules(level: float = 0.5, t: int | None = None, ax=None):
    """gamma_t^2 vs t for both schedules, the steps below ``level`` shaded, the shares in the legend (Fig. 3)."""
    c = schedule_curves(level=level)
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6.5, 3.6))
    for (kind, g2), color in zip(c["gamma2"].items(), ("tab:blue", "tab:orange")):
        ax.plot(c["t"], g2, color=color, lw=2,
                label=f"{SCHEDULE_LABELS[kind]}: {100 * c['share'][kind]:.1f}% of steps below {level}")
        ax.fill_between(c["t"], 0, g2, where=g2 < level, color=color, alpha=0.12)
    ax.axhline(level, color="0.5", lw=1, ls=":")
    if t is not None:
        ax.axvline(t, color="k", lw=1)
        for kind, g2 in c["gamma2"].items():
            ax.plot([t], [g2[t]], "o", color="k", ms=4)
    ax.set_xlabel("time step t")
    ax.set_ylabel("gamma_t^2 (signal share)")
    ax.set_xlim(0, len(c["t"]))
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("Noise schedules (arXiv 2401.14404, Fig. 3)", fontsize=10)
    return fig


@torch.no_grad()
def schedule_noising(images, t: int, seed: int = 0) -> dict:
    """eq. (1) at one t under both schedules, with the same eps: {kind: (N, C, H, W)}, plus gamma2 at t.

    Shown on pixels for the eye; in the trajectory the noise is added to the tokenizer's latent.
    """
    x = torch.as_tensor(images).float()
    x = x[None] if x.ndim == 3 else x  # (N, C, H, W)
    if not 0 <= int(t) < T:
        raise ValueError(f"t={t} must lie in 0..{T - 1}")
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    tt = torch.full((len(x),), int(t))
    out = {k: NoiseSchedule(k).add_noise(x, tt, eps) for k in SCHEDULE_LABELS}
    out["gamma2"] = {k: float(gamma2_table(k)[int(t)]) for k in SCHEDULE_LABELS}
    return out


def plot_schedule_noising(images, t: int = 250, seed: int = 0):
    """Fig. 3 with t marked, and the images noised at t under each schedule (one row per schedule)."""
    r = schedule_noising(images, t, seed)
    n = len(r["ddpm_linear_beta"])
    fig = plt.figure(figsize=(max(7.0, 1.1 * n + 1.5), 6.2))
    grid = fig.add_gridspec(3, n, height_ratios=[2.2, 1, 1], hspace=0.45)
    plot_schedules(t=t, ax=fig.add_subplot(grid[0, :]))
    for row, kind in enumerate(SCHEDULE_LABELS, start=1):
        for j in range(n):
            ax = fig.add_subplot(grid[row, j])
            _imshow(ax, r[kind][j])
            if j == 0:
                g2 = r["gamma2"][kind]
                ax.set_title(f"{SCHEDULE_LABELS[kind].split(' (')[0]}: gamma^2 = {g2:.3f}, "
                             f"sigma = {math.sqrt(1 - g2):.3f}", fontsize=8, loc="left")
    return fig


def explore_schedule(images, t: int = 250, seed: int = 0, display: bool = True):
    """A slider over t (0..999) showing the noised images under both schedules."""
    import ipywidgets as W

    slider = W.IntSlider(value=t, min=0, max=T - 1, step=5, description="t", continuous_update=False,
                         layout=W.Layout(width="520px"))
    return _interactive(lambda t: _show(plot_schedule_noising(images, t, seed)), display, t=slider)

