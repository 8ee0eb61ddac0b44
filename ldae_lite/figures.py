"""Figures of the notebooks that are not the trajectory itself (that one is :mod:`ldae_lite.plots`):
rows of images, training-loss curves, Fig. 8's denoising grid and how much a label helps a denoiser.
Each draws what :mod:`ldae_lite.outputs`, :mod:`ldae_lite.analysis` or a ``Result`` returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def image_rows(rows: Mapping[str, torch.Tensor], n: int = 8, ax: plt.Axes | None = None) -> plt.Axes:
    """One labelled row per entry of ``rows`` ({name: images (N, C, H, W) in [-1, 1]}), its first n
    images side by side: e.g. originals above each tokenizer's reconstructions."""
    if not rows:
        raise ValueError("rows is empty")
    shapes = {tuple(v.shape[1:]) for v in rows.values()}
    if len(shapes) != 1 or any(v.ndim != 4 for v in rows.values()):
        raise ValueError(f"every entry must be (N, C, H, W) with the same C, H, W; got {shapes}")
    c, h, w = shapes.pop()
    canvas = torch.ones(c, len(rows) * h, n * w)  # white where a row has fewer than n images
    for r, images in enumerate(rows.values()):
        for j, img in enumerate(images[:n]):
            canvas[:, r * h:(r + 1) * h, j * w:(j + 1) * w] = img.detach().float().cpu()
    if ax is None:
        _, ax = plt.subplots(figsize=(n * 0.8 + 2, len(rows) * 0.85))
    pic = canvas.clamp(-1, 1).add(1).div(2)
    ax.imshow(pic[0].numpy() if c == 1 else pic.permute(1, 2, 0).numpy(), cmap="gray" if c == 1 else None,
              vmin=0, vmax=1)
    ax.set_yticks(np.arange(len(rows)) * h + h / 2, list(rows))
    ax.set_xticks([])
    return ax


def plot_losses(curves: Mapping[str, Sequence], ax: plt.Axes | None = None) -> plt.Axes:
    """Training-loss curves from ``Result.losses`` ([[step, loss], ...]), one line per name."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for name, losses in curves.items():
        arr = np.asarray(losses, dtype=float).reshape(-1, 2)
        ax.plot(arr[:, 0], arr[:, 1], marker="o" if len(arr) < 20 else None, label=name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.legend()
    return ax


def plot_denoising(examples: dict, max_images: int = 4):
    """Fig. 8-style grid: one row per image; clean, then (noisy, denoised) per sigma. Returns the figure."""
    n = min(max_images, len(examples["clean"]))
    s = len(examples["sigmas"])
    fig, axes = plt.subplots(n, 1 + 2 * s, figsize=(1.3 * (1 + 2 * s), 1.4 * n + 0.4), squeeze=False)
    for i in range(n):
        cells = [("clean", examples["clean"][i])]
        for j, sigma in enumerate(examples["sigmas"]):
            cells += [(f"noisy\nσ={sigma:.2f}", examples["noisy"][j, i]),
                      (f"denoised\nσ={sigma:.2f}", examples["denoised"][j, i])]
        for ax, (title, img) in zip(axes[i], cells):
            img = img.float().add(1).div(2).clamp(0, 1)
            ax.imshow((img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def plot_label_use(use: dict, ax=None):
    """Bars per t: the share of the null-label error that the true label removes (a wrong one: adds, so
    below 0), beside a line at what the label is worth at pure noise (the class means' share of the variance)."""
    ax = ax or plt.gca()
    ts = use["t"]
    x = torch.arange(len(ts)).float()
    wrong = [100 * (1 - w / m) for w, m in zip(use["wrong"], use["null"])]
    ax.bar(x - 0.2, use["gain"], 0.4, label="true label")
    ax.bar(x + 0.2, wrong, 0.4, label="wrong label")
    ax.axhline(use["pure_noise"], color="k", ls="--", lw=1,
               label=f"the best denoiser at pure noise: {use['pure_noise']:.0f}%")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(x.tolist(), [str(t) for t in ts])
    ax.set_xlabel("noise step t")
    ax.set_ylabel("error removed vs the null label, %")
    ax.legend()
    return ax
