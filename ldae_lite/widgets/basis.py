"""The basis viewer (arXiv 2401.14404, Fig. 4): the components of a patch PCA, patch AE or patch VAE shown
as image patches, and the reconstructions decode(encode(x)) of several tokenizers side by side.

:func:`basis_images` returns the patches, :func:`plot_basis` draws them, :func:`explore_basis` puts
sliders in front; :func:`plot_reconstructions` draws the reconstructions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..patches import unpatchify
from ..plots import to_display
from ..tokenizers import PatchAE, PatchPCA
from ._common import _imshow, _interactive, _show


def basis_images(tokenizer, k: int = 16, start: int = 0, which: str = "decoder") -> np.ndarray:
    """Components ``start .. start + k - 1`` of a patch tokenizer as (k, C, p, p) patches (unnormalised).

    PatchPCA: rows of the full basis (any index below D). PatchAE / PatchVAE: ``which='decoder'`` the
    columns of U^T (what each latent coordinate adds to the patch), ``'encoder'`` the rows of V (Fig. 4).
    """
    if isinstance(tokenizer, PatchPCA):
        rows = tokenizer.basis
    elif isinstance(tokenizer, PatchAE):
        if which not in ("decoder", "encoder"):
            raise ValueError(f"which={which!r} must be 'decoder' or 'encoder'")
        rows = tokenizer.decoder.weight.T if which == "decoder" else tokenizer.encoder.weight[: tokenizer.latent_dim]
    else:
        raise ValueError(f"{type(tokenizer).__name__} has no linear patch basis; pass a PatchPCA, PatchAE or PatchVAE")
    if not 0 <= start < len(rows) or k < 1:
        raise ValueError(f"start={start} must lie in 0..{len(rows) - 1} and k={k} must be >= 1")
    rows = rows[start:start + k].detach().float().cpu()  # (k, D)
    return unpatchify(rows[:, None, :], tokenizer.patch_size, tokenizer.channels).numpy()


def plot_basis(tokenizers, k: int = 16, start: int = 0, which: str = "decoder", cols: int = 16):
    """One row block per tokenizer ({name: tokenizer} or one tokenizer): its components as patches,
    each scaled to its own largest magnitude (gray = 0), numbered from ``start`` (Fig. 4)."""
    named = dict(tokenizers) if isinstance(tokenizers, Mapping) else {type(tokenizers).__name__: tokenizers}
    blocks = {name: basis_images(tok, k, start, which) for name, tok in named.items()}
    cols = min(cols, max(len(b) for b in blocks.values()))
    rows_per = {name: math.ceil(len(b) / cols) for name, b in blocks.items()}
    fig, axes = plt.subplots(sum(rows_per.values()), cols, figsize=(0.75 * cols + 1.5, 0.85 * sum(rows_per.values())
                                                                     + 0.6), squeeze=False)
    r = 0
    for name, b in blocks.items():
        for i in range(rows_per[name] * cols):
            ax = axes[r + i // cols, i % cols]
            ax.set_xticks([])
            ax.set_yticks([])
            if i < len(b):
                ax.imshow(to_display(b[i] / max(np.abs(b[i]).max(), 1e-12)), cmap="gray", vmin=0, vmax=1)
                ax.set_title(str(start + i), fontsize=7, pad=2)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
        r += rows_per[name]
    fig.suptitle("Patch bases as images (arXiv 2401.14404, Fig. 4); gray = 0, each scaled to its max", fontsize=10)
    return fig


def explore_basis(tokenizers, max_k: int | None = None, which: str = "decoder", display: bool = True):
    """Sliders: how many components (k) and from which index (start)."""
    import ipywidgets as W

    named = dict(tokenizers) if isinstance(tokenizers, Mapping) else {type(tokenizers).__name__: tokenizers}
    most = max_k or min(len(basis_images(t, 10**6, 0, which)) for t in named.values())
    return _interactive(lambda k, start: _show(plot_basis(named, k, min(start, most - 1), which)), display,
                        k=W.IntSlider(value=min(16, most), min=1, max=min(most, 64), description="k"),
                        start=W.IntSlider(value=0, min=0, max=most - 1, description="start index"))


@torch.no_grad()
def plot_reconstructions(images, tokenizers: Mapping, n: int = 8):
    """Row 0 the images, then one row per tokenizer: decode(encode(x)) with its per-pixel MSE."""
    x = torch.as_tensor(images).float()[:n]
    fig, axes = plt.subplots(len(tokenizers) + 1, len(x), figsize=(1.1 * len(x) + 1.8, 1.2 * (len(tokenizers) + 1)),
                             squeeze=False)
    rows = [("original", x, None)]
    for name, tok in tokenizers.items():
        dev = tok.latent_scale.device
        rec = tok.reconstruct(x.to(dev)).float().cpu()
        rows.append((name, rec, float((rec - x).pow(2).mean())))
    for r, (name, imgs, mse) in enumerate(rows):
        for j in range(len(x)):
            _imshow(axes[r, j], imgs[j])
        axes[r, 0].set_ylabel(name + ("" if mse is None else f"\nMSE {mse:.4f}"), rotation=0, ha="right",
                              va="center", fontsize=8)
    return fig

