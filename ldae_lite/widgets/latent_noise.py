"""The PCA-noise explorer (arXiv 2401.14404, Fig. 7): clean image, pixel noise and PCA-latent noise at the
same sigma, and the PCA projection that l-DAE sees at sigma = 0.

:func:`pca_noise` computes the images (numpy arrays), :func:`plot_pca_noise` draws them with a sigma
ruler, :func:`explore_pca_noise` puts sliders in front; :func:`pca_view` turns one fitted basis into a
tokenizer of any latent dimension d and latent scaling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..noise import SINGLE_SIGMA
from ..patches import patchify, unpatchify
from ..tokenizers import PatchPCA
from ._common import _as_chw, _imshow, _interactive, _show
from .pca_sources import _image_pca, fitted_pca

SIGMA_MAX = math.sqrt(2.0)  # the training range of sigma after input scaling is removed (Sec. 4.3)
DIMS = (1, 2, 4, 8, 16, 32, 64, 128, 256)  # the d slider's stops (clipped to D = p * p * C)
WHITEN = (True, False, "none")  # latent scaling before noise: whitened, one global scale, none (see pca_view)
WHITEN_LABELS = {True: "whitened", False: "global scale", "none": "orthonormal V, unscaled"}


def _whiten_mode(whiten) -> bool | str:
    if isinstance(whiten, str):
        if whiten != "none":
            raise ValueError(f"whiten={whiten!r} must be one of {WHITEN}")
        return "none"
    return bool(whiten)


def pca_view(pca: PatchPCA, d: int, whiten: bool | str = True) -> PatchPCA:
    """The same fitted basis as a one-patch PatchPCA tokenizer with latent dimension d and latent scaling.

    whiten: True (the package's default: coordinate i divided by sqrt(lambda_i)), False (the package's
    ``whiten=False``: one global scale 1 / sqrt(mean lambda_1..d), as PatchPCA.fit sets it) or "none"
    (no scale at all: the orthonormal V of the paper's equations). Shares (does not copy) basis, mean and
    variances with ``pca``.
    """
    D, p = pca.patch_dim, pca.patch_size
    if not 1 <= int(d) <= D:
        raise ValueError(f"d={d} must lie in 1..D={D} (D = patch_size**2 * channels = {p}*{p}*{pca.channels})")
    whiten = _whiten_mode(whiten)
    view = PatchPCA(int(d), p, pca.channels, p, whiten=whiten is True, num_patches=pca.num_patches)
    view.basis, view.mean, view.variances = pca.basis, pca.mean, pca.variances
    global_scale = whiten is False  # as PatchPCA.fit step 4
    view.latent_scale.fill_(1.0 / pca.variances[:d].mean().clamp_min(1e-12).sqrt().item() if global_scale else 1.0)
    view.fitted.fill_(True)
    return view.eval()


@torch.no_grad()
def pca_noise(image, sigma: float, d: int = 16, patch_size: int = 16, whiten: bool | str = True, seed: int = 0,
              pca: PatchPCA | None = None) -> dict:
    """Pixel noise vs PCA-latent noise at the same sigma, on one image (Fig. 7).

    image: (C, H, W) or (H, W, C) in [-1, 1] (numpy or torch); patch_size must divide H and W.
    pca: a fitted PatchPCA with this patch size and channel count (e.g. from :func:`fitted_pca`); None
    fits one on random patches of the image itself. Only its basis is used: d and whiten come from here
    (whiten: True, False or "none", see :func:`pca_view`).

    Returns numpy arrays in the layout of ``image``:
      clean         x
      pixel_noisy   x + sigma * eps,                       eps ~ N(0, I) per pixel
      projected     V^T V x (+ mean): inverse PCA of the d-dim latent, what l-DAE sees at sigma = 0
      latent_noisy  V^T (V x + sigma * eps_z),             eps_z ~ N(0, I_d) per patch (Sec. 4.3, row 11)
    plus pixel_noise / latent_noise (the two noise images), components (d, D), the noises' rms per pixel,
    the explained variance of the top d, and D. The same seed gives the same eps at every sigma.

    Why latent noise corrupts patches rather than pixels: eps_z has d coordinates per patch and V^T maps
    them to d smooth, patch-sized patterns (the top principal components: mostly the patch's brightness,
    gradients, low frequencies); the noise is independent between patches, so the corruption has the
    patch grid's structure and does not average away at higher resolution (like MAE's masking of patches).
    Pixel noise is independent per pixel: high-frequency grain that a little blurring removes.

    Why whitening matters for how strong it looks (docs/paper.md §6 on Fig. 7, §8.1 on PCA whitening):
    with the paper's orthonormal V and no scaling (whiten="none"), the latent noise has energy
    sigma^2 * d per patch against sigma^2 * D for pixel noise, so at the same sigma it looks far weaker
    (rms sigma * sqrt(d / D) per pixel). The package scales latents to unit variance before adding noise:
    whitened (eps_i times sqrt(lambda_i), True) or one global scale (False). Both give energy
    sigma^2 * sum_{i<=d} lambda_i per patch, as strong as the data's own variance in those directions;
    whitening puts it where the data varies most (the strongest, lowest-frequency components), the global
    scale spreads it evenly over the d components.
    """
    if not sigma >= 0:  # also catches NaN
        raise ValueError(f"sigma={sigma} must be >= 0 (the explorer's range is [0, sqrt(2)])")
    x, channels_last = _as_chw(image)  # (C, H, W)
    p = _check_patch_size(x, patch_size)
    pca = _image_pca(x, p) if pca is None else _check_pca(pca, p, x.shape[0])
    view = pca_view(pca, d, whiten)  # ValueError for d outside 1..D
    images = _noised(view, x, p, sigma, seed)  # {name: (C, H, W)}
    images |= dict(pixel_noise=images["pixel_noisy"] - x, latent_noise=images["latent_noisy"] - images["projected"])

    def layout(t):  # (C, H, W) tensor -> numpy in the layout of ``image``
        t = t.permute(1, 2, 0) if channels_last else t
        return t.contiguous().numpy().astype(np.float32)

    return {name: layout(t) for name, t in images.items()} | dict(
        components=view.components.numpy().copy(), sigma=float(sigma), d=int(d), D=pca.patch_dim, patch_size=p,
        whiten=_whiten_mode(whiten),
        pixel_noise_rms=float(images["pixel_noise"].pow(2).mean().sqrt()),
        latent_noise_rms=float(images["latent_noise"].pow(2).mean().sqrt()),
        explained_variance=float(pca.variances[:d].sum() / pca.variances.sum().clamp_min(1e-12)))


def _check_patch_size(x: torch.Tensor, patch_size: int) -> int:
    """pca_noise, step 1: the patch size as an int, or a ValueError listing the sizes that divide H and W."""
    _, h, w = x.shape
    p = int(patch_size)
    if p < 1 or h % p or w % p:
        allowed = [q for q in range(1, min(h, w) + 1) if h % q == 0 and w % q == 0]
        raise ValueError(f"patch_size={patch_size} must divide the image size {h}x{w}; allowed: {allowed}")
    return p


def _check_pca(pca: PatchPCA, p: int, channels: int) -> PatchPCA:
    """pca_noise, step 2: a given PCA must have the image's patch size and channel count."""
    if pca.patch_size != p or pca.channels != channels:
        raise ValueError(f"pca has patch_size={pca.patch_size}, channels={pca.channels}; the image needs "
                         f"patch_size={p}, channels={channels}")
    return pca


def _noised(view: PatchPCA, x: torch.Tensor, p: int, sigma: float, seed: int) -> dict[str, torch.Tensor]:
    """pca_noise, step 3: the clean image, its projection and both noisy versions, each (C, H, W).

    Each patch of x goes through the view as a one-patch image; the pixel noise is drawn before the
    latent noise from one generator, so a seed fixes both.
    """
    c, h, w = x.shape
    grid = (h // p, w // p)
    tokens = patchify(x[None], p)[0]  # (L, D)
    as_images = unpatchify(tokens[:, None, :], p, c)  # (L, C, p, p): one-patch images for the view

    def back(patch_images):  # (L, C, p, p) -> (C, H, W)
        return unpatchify(patchify(patch_images, p).reshape(1, -1, p * p * c), p, c, grid=grid)[0]

    gen = torch.Generator().manual_seed(seed)
    eps_pixel = torch.randn(x.shape, generator=gen)  # (C, H, W)
    eps_latent = torch.randn((len(tokens), 1, view.latent_dim), generator=gen)  # (L, 1, d)
    z0 = view.encode(as_images)  # (L, 1, d)
    return dict(clean=x, pixel_noisy=x + sigma * eps_pixel, projected=back(view.decode(z0)),
                latent_noisy=back(view.decode(z0 + sigma * eps_latent)))  # the package's image input, eq. (1)


def _sigma_ruler(ax, sigma):
    """A thin axis: the range [0, sqrt 2], the paper's sqrt(1/3) marked, the current sigma as a dot."""
    ax.plot([0, SIGMA_MAX], [0, 0], color="0.6", lw=2)
    ax.axvline(SINGLE_SIGMA, color="tab:red", lw=1, ls="--")
    ax.text(SINGLE_SIGMA, 0.6, " sqrt(1/3): Fig. 7, single level", color="tab:red", fontsize=8, va="center")
    ax.plot([sigma], [0], "o", color="k")
    ax.set_xlim(-0.02, SIGMA_MAX + 0.02)
    ax.set_ylim(-1, 1)
    ax.set_yticks([])
    ax.set_xticks([0, 0.5, 1.0, SIGMA_MAX], ["0", "0.5", "1", "sqrt 2"])
    ax.set_xlabel(f"sigma = {sigma:.3f}", fontsize=9)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)


def _panel_titles(r: dict) -> dict[str, str]:
    """The four panels' titles, at most about 37 characters a line, so that four fit side by side in a
    12-inch figure at full width (the latent scaling gets a line of its own for that)."""
    return {"clean": "clean image x",
            "pixel_noisy": f"pixel noise: x + sigma eps\nrms {r['pixel_noise_rms']:.3f} per pixel",
            "latent_noisy": f"PCA-latent noise, d = {r['d']} of D = {r['D']}\n({WHITEN_LABELS[r['whiten']]})\n"
                            f"rms {r['latent_noise_rms']:.3f} per pixel",
            "projected": f"PCA projection V^T V x (sigma = 0)\n"
                         f"top {r['d']}: {100 * r['explained_variance']:.1f}% of the variance"}


def plot_pca_noise(image, sigma: float = SINGLE_SIGMA, d: int = 16, patch_size: int = 16, whiten: bool | str = True,
                   seed: int = 0, pca: PatchPCA | None = None, show_noise: bool = False, title: str | None = None):
    """Clean | pixel noise | PCA-latent noise | PCA projection, at one sigma; a sigma ruler below.

    show_noise adds a second row with the two noise images (gray = 0), where the patch grid of the
    latent noise is easiest to see. Returns the Figure. Arguments as :func:`pca_noise`.
    """
    r = pca_noise(image, sigma, d, patch_size, whiten, seed, pca)
    chw = {k: _as_chw(r[k])[0] for k in ("clean", "pixel_noisy", "latent_noisy", "projected", "pixel_noise",
                                          "latent_noise")}
    h, w = chw["clean"].shape[1:]
    rows = 2 if show_noise else 1
    # constrained layout makes room for every title (a three-line title above a short photo met the
    # figure's title; a long one met its neighbour's), at the price of some white space
    fig = plt.figure(figsize=(12, rows * (2.9 * h / w + 0.6) + 1.3), layout="constrained")
    grid = fig.add_gridspec(rows + 1, 4, height_ratios=[1] * rows + [0.12])
    for j, (key, text) in enumerate(_panel_titles(r).items()):
        _imshow(fig.add_subplot(grid[0, j]), chw[key], text)
    if show_noise:
        _imshow(fig.add_subplot(grid[1, 1]), chw["pixel_noise"], "the pixel noise (gray = 0)")
        _imshow(fig.add_subplot(grid[1, 2]), chw["latent_noise"], f"the latent noise: V^T sigma eps_z\n"
                f"one {r['patch_size']}x{r['patch_size']} pattern per patch")
    _sigma_ruler(fig.add_subplot(grid[rows, 1:3]), r["sigma"])
    fig.suptitle(title or f"Pixel noise vs PCA-latent noise at the same sigma (arXiv 2401.14404, Fig. 7), "
                          f"patch {r['patch_size']}x{r['patch_size']}", fontsize=10)
    return fig


def explore_pca_noise(images, source: str | None = "photos", patch_sizes=(8, 16, 32), dims=DIMS,
                      sigma: float = SINGLE_SIGMA, d: int = 16, patch_size: int = 16, whiten: bool | str = True,
                      show_noise: bool = False, display: bool = True):
    """Sliders for sigma in [0, sqrt 2] (starts at sqrt(1/3)), d, patch size, latent scaling, and the image.

    images: one image or {name: image}; source: where the PCA comes from (see :func:`fitted_pca`), or
    None to fit on each image's own patches. Each (source, patch size) is fitted once and cached, so after
    the first use of a patch size the sliders only re-project. A d above D is clipped to D (and says so).
    Returns the explorer widget (see :func:`_interactive`; displayed when ``display``).
    """
    import ipywidgets as W

    named = dict(images) if isinstance(images, Mapping) else {"image": images}
    first = _as_chw(next(iter(named.values())))[0]
    sizes = [p for p in patch_sizes if first.shape[1] % p == 0 and first.shape[2] % p == 0]
    if not sizes:
        raise ValueError(f"none of patch_sizes={tuple(patch_sizes)} divides the image size {tuple(first.shape[1:])}")

    def view(image, sigma, d, patch_size, whiten):
        x = named[image]
        D = patch_size * patch_size * _as_chw(x)[0].shape[0]
        pca = fitted_pca(source, patch_size) if source is not None else None
        title = None if d <= D else f"d = {d} > D = {D}: clipped to d = D (no compression, no residual)"
        return _show(plot_pca_noise(x, sigma, min(d, D), patch_size, whiten, pca=pca, show_noise=show_noise,
                                    title=title))

    style, wide = {"description_width": "initial"}, W.Layout(width="520px")
    return _interactive(view, display, image=W.Dropdown(options=list(named), description="image"),
                        sigma=W.FloatSlider(value=sigma, min=0.0, max=round(SIGMA_MAX, 3), step=0.01,
                                            description="sigma (sqrt(1/3) = 0.577)", style=style,
                                            readout_format=".3f", continuous_update=False, layout=wide),
                        d=W.SelectionSlider(options=list(dims), value=d, description="d (latent dim)",
                                            style=style, continuous_update=False, layout=wide),
                        patch_size=W.Dropdown(options=sizes, value=patch_size if patch_size in sizes else sizes[0],
                                              description="patch size"),
                        whiten=W.Dropdown(options=[(f"{WHITEN_LABELS[k]}{' (package default)' if k is True else ''}", k)
                                                   for k in WHITEN], value=whiten, description="latent scaling",
                                          style=style))
