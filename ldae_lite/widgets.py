"""Interactive views of the paper's figures: each is a plain function first, an ipywidgets wrapper second.

The plain functions return arrays and matplotlib Figures, so unit tests and headless notebook runs call
them directly; the ``explore_*`` wrappers only put sliders in front of them (:func:`_interactive`: the
view is drawn once with the initial values, then again on every slider change, never blocking).

* PCA-noise explorer (arXiv 2401.14404 Fig. 7): clean / pixel noise / PCA-latent noise at the same sigma.
  :func:`pca_noise`, :func:`plot_pca_noise`, :func:`explore_pca_noise`, :func:`fitted_pca`.
* Schedule explorer (Fig. 3): gamma_t^2 of DDPM's linear-beta schedule vs linear gamma^2, and the noised
  images under both at one t. :func:`schedule_curves`, :func:`plot_schedules`, :func:`plot_schedule_noising`,
  :func:`explore_schedule`.
* Basis viewer (Fig. 4): the components of a patch PCA (or a patch AE / VAE) as image patches.
  :func:`basis_images`, :func:`plot_basis`, :func:`explore_basis`; :func:`plot_reconstructions` beside it.
* Trajectory viewer (Fig. 6): ours vs the paper's numbers for chosen steps. :func:`trajectory_view`,
  :func:`explore_trajectory`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import html
import io
import math
from collections.abc import Callable, Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from . import data as data_mod
from . import paper
from .noise import SINGLE_SIGMA, NoiseSchedule, T, gamma2_table, share_below
from .patches import patchify, unpatchify
from .plots import plot_trajectory
from .tokenizers import PatchAE, PatchPCA

SIGMA_MAX = math.sqrt(2.0)  # the training range of sigma after input scaling is removed (Sec. 4.3)
PHOTO_SIZE = (256, 384)  # the bundled 427x640 photos resized to the paper's 256-pixel scale
DIMS = (1, 2, 4, 8, 16, 32, 64, 128, 256)  # the d slider's stops (clipped to D = p * p * C)
WHITEN = (True, False, "none")  # latent scaling before noise: whitened, one global scale, none (see pca_view)
WHITEN_LABELS = {True: "whitened", False: "global scale", "none": "orthonormal V, unscaled"}
SCHEDULE_LABELS = {"ddpm_linear_beta": "DDPM linear beta (original)", "linear_gamma2": "linear gamma^2 (Sec. 4.1)"}


# ------------------------------------------------------------------------------------------ helpers
def _as_chw(image) -> tuple[torch.Tensor, bool]:
    """(C, H, W), (H, W, C) or (H, W), numpy or torch -> float32 (C, H, W), and whether it was channels-last."""
    x = torch.as_tensor(np.asarray(image) if not torch.is_tensor(image) else image).detach().float().cpu()
    if x.ndim == 2:
        return x[None], False
    if x.ndim == 3 and x.shape[0] in (1, 3):
        return x, False
    if x.ndim == 3 and x.shape[-1] in (1, 3):
        return x.permute(2, 0, 1).contiguous(), True
    raise ValueError(f"image must be (C, H, W) or (H, W, C) with C in (1, 3), or (H, W); got {tuple(x.shape)}")


def _to_display(img) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> (H, W) or (H, W, 3) in [0, 1] for imshow (clipped: noise leaves the range)."""
    x = torch.as_tensor(img).detach().float().cpu().clamp(-1, 1).add(1).div(2)
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def _imshow(ax, img, title=None):
    ax.imshow(_to_display(img), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def _show(fig):
    """For the wrappers: close the figure (so a notebook does not show it twice) and return it."""
    plt.close(fig)
    return fig


# ------------------------------------------------------------------------------------------ PCA noise
@functools.lru_cache(maxsize=2)
def _photos(size: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    out = []
    for p in data_mod.sample_photos():  # (427, 640, 3) in [-1, 1]
        x = torch.from_numpy(p).permute(2, 0, 1)[None]  # (1, 3, 427, 640)
        out.append(F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)[0].clamp(-1, 1))
    return tuple(out)


def photo_images(size: tuple[int, int] = PHOTO_SIZE) -> list[torch.Tensor]:
    """scikit-learn's two photos (china, flower) resized to ``size``: list of (3, H, W) in [-1, 1].

    256 x 384 keeps the whole scene at about the scale of the paper's 256 x 256 ImageNet images, and is
    divisible by every patch size of the explorer (8, 16, 32).
    """
    return [p.clone() for p in _photos(tuple(size))]


def random_patches(images, patch_size: int, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` patches at random (overlapping) positions of random images: (n, C, p, p).

    images: a list of (C, H, W) tensors (sizes may differ). Overlapping positions give far more distinct
    patches than the non-overlapping grid (the paper samples patches at random too, Sec. 4.2).
    """
    p, gen = int(patch_size), torch.Generator().manual_seed(seed)
    which = torch.randint(len(images), (n,), generator=gen)
    out = torch.empty(n, images[0].shape[0], p, p)
    offsets = torch.arange(p)
    for i, img in enumerate(images):
        rows = torch.nonzero(which == i).flatten()
        _, h, w = img.shape
        if h < p or w < p:
            raise ValueError(f"patch_size={p} is larger than an image of size {h}x{w}")
        ys = torch.randint(h - p + 1, (len(rows),), generator=gen)[:, None] + offsets  # (m, p)
        xs = torch.randint(w - p + 1, (len(rows),), generator=gen)[:, None] + offsets  # (m, p)
        out[rows] = img[:, ys[:, :, None], xs[:, None, :]].permute(1, 0, 2, 3)  # (C, m, p, p) -> (m, C, p, p)
    return out


_PCA_CACHE: dict[tuple, PatchPCA] = {}


def fitted_pca(source: str = "photos", patch_size: int = 16, *, num_patches: int = 50_000, seed: int = 0,
               verbose: bool = True) -> PatchPCA:
    """A PatchPCA over all D = p * p * C components, fitted once per (source, patch size) and kept in memory.

    source: "photos" (the bundled photos at :data:`PHOTO_SIZE`, random overlapping patches: 50k patches
    determine D = 768 (p = 16) well; p = 32, D = 3072, takes a minute on a 2-core CPU, once) or a dataset
    name of :data:`ldae_lite.data.DATASETS` (its training images' own patch grid, as the tokenizer does).
    The eigendecomposition is :meth:`PatchPCA.fit`'s; this function only chooses the patches.
    """
    key = (source, int(patch_size), int(num_patches), int(seed))
    if key in _PCA_CACHE:
        return _PCA_CACHE[key]
    if source == "photos":
        images = random_patches(photo_images(), patch_size, num_patches, seed)  # (n, 3, p, p)
        what = f"{num_patches} random 3x{patch_size}x{patch_size} patches of the sample photos"
    elif source in data_mod.DATASETS:
        images = data_mod.load(source, "train", verbose=verbose).images  # (N, C, 32, 32)
        if images.shape[-1] % patch_size:
            raise ValueError(f"patch_size={patch_size} must divide the {source} image size {images.shape[-1]}")
        what = f"up to {num_patches} {patch_size}x{patch_size} patches of {source} train"
    else:
        raise ValueError(f"source={source!r} must be 'photos' or one of {data_mod.DATASETS}")
    c, size = images.shape[1], images.shape[-1]
    pca = PatchPCA(patch_size * patch_size * c, size, c, patch_size, whiten=True, num_patches=num_patches)
    stats = pca.fit(images, progress=False, seed=seed)
    if verbose:
        print(f"patch PCA on {what}: D = {pca.patch_dim}, {stats['seconds']:.1f} s (kept in memory)")
    _PCA_CACHE[key] = pca.eval()
    return pca


def _image_pca(x: torch.Tensor, patch_size: int) -> PatchPCA:
    """A PCA fitted on random patches of the image itself (when neither a source nor a pca is given)."""
    digest = hashlib.sha1(x.numpy().tobytes()).hexdigest()[:16]
    key = ("image", digest, int(patch_size))
    if key not in _PCA_CACHE:
        n = min(50_000, (x.shape[1] - patch_size + 1) * (x.shape[2] - patch_size + 1))
        patches = random_patches([x], patch_size, n)
        pca = PatchPCA(patches[0].numel(), patch_size, x.shape[0], patch_size, num_patches=n)
        pca.fit(patches, progress=False)
        _PCA_CACHE[key] = pca.eval()
    return _PCA_CACHE[key]


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

    Why whitening matters for how strong it looks (PAPER.md Sec. 6 caveat): with the paper's orthonormal V
    and no scaling (whiten="none"), the latent noise has energy sigma^2 * d per patch against sigma^2 * D
    for pixel noise, so at the same sigma it looks far weaker (rms sigma * sqrt(d / D) per pixel). The
    package scales latents to unit variance before adding noise: whitened (eps_i times sqrt(lambda_i),
    True) or one global scale (False). Both give energy sigma^2 * sum_{i<=d} lambda_i per patch, as strong
    as the data's own variance in those directions; whitening puts it where the data varies most (the
    strongest, lowest-frequency components), the global scale spreads it evenly over the d components.
    """
    if sigma < 0:
        raise ValueError(f"sigma={sigma} must be >= 0 (the explorer's range is [0, sqrt(2)])")
    x, channels_last = _as_chw(image)
    c, h, w = x.shape
    p = int(patch_size)
    if p < 1 or h % p or w % p:
        allowed = [q for q in range(1, min(h, w) + 1) if h % q == 0 and w % q == 0]
        raise ValueError(f"patch_size={patch_size} must divide the image size {h}x{w}; allowed: {allowed}")
    if pca is None:
        pca = _image_pca(x, p)
    if pca.patch_size != p or pca.channels != c:
        raise ValueError(f"pca has patch_size={pca.patch_size}, channels={pca.channels}; the image needs "
                         f"patch_size={p}, channels={c}")
    view = pca_view(pca, d, whiten)  # ValueError for d outside 1..D
    grid = (h // p, w // p)
    tokens = patchify(x[None], p)[0]  # (L, D)
    as_images = unpatchify(tokens[:, None, :], p, c)  # (L, C, p, p): one-patch images for the view

    def back(patch_images):  # (L, C, p, p) -> (C, H, W)
        return unpatchify(patchify(patch_images, p).reshape(1, -1, p * p * c), p, c, grid=grid)[0]

    gen = torch.Generator().manual_seed(seed)
    eps_pixel = torch.randn(x.shape, generator=gen)  # (C, H, W)
    eps_latent = torch.randn((len(tokens), 1, int(d)), generator=gen)  # (L, 1, d)
    z0 = view.encode(as_images)  # (L, 1, d)
    projected = back(view.decode(z0))
    latent_noisy = back(view.decode(z0 + sigma * eps_latent))  # the package's image input, eq. (1) + inverse PCA
    pixel_noisy = x + sigma * eps_pixel

    def out(t):
        t = t.permute(1, 2, 0) if channels_last else t
        return t.contiguous().numpy().astype(np.float32)

    return dict(clean=out(x), pixel_noisy=out(pixel_noisy), projected=out(projected), latent_noisy=out(latent_noisy),
                pixel_noise=out(pixel_noisy - x), latent_noise=out(latent_noisy - projected),
                components=view.components.numpy().copy(), sigma=float(sigma), d=int(d), D=pca.patch_dim,
                patch_size=p, whiten=_whiten_mode(whiten),
                pixel_noise_rms=float((pixel_noisy - x).pow(2).mean().sqrt()),
                latent_noise_rms=float((latent_noisy - projected).pow(2).mean().sqrt()),
                explained_variance=float(pca.variances[:d].sum() / pca.variances.sum().clamp_min(1e-12)))


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
    fig = plt.figure(figsize=(12, rows * 3.0 * h / w + 1.4))
    grid = fig.add_gridspec(rows + 1, 4, height_ratios=[1] * rows + [0.12], hspace=0.35, wspace=0.05)
    mode = WHITEN_LABELS[r["whiten"]]
    panels = [("clean", "clean image x"),
              ("pixel_noisy", f"pixel noise: x + sigma eps\nrms {r['pixel_noise_rms']:.3f} per pixel"),
              ("latent_noisy", f"PCA-latent noise ({mode})\nd = {r['d']} of D = {r['D']}, "
                               f"rms {r['latent_noise_rms']:.3f} per pixel"),
              ("projected", f"PCA projection V^T V x (sigma = 0)\ntop {r['d']}: "
                            f"{100 * r['explained_variance']:.1f}% of the variance")]
    for j, (key, text) in enumerate(panels):
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


def _interactive(fn, display: bool, **controls):
    """Controls in front of ``fn`` (their values as keywords -> a Figure), redrawn on every change.

    Returns an ``ipywidgets.VBox``: the controls, a status line and an ``Image`` holding the PNG of the
    figure; ``.controls`` maps each keyword to its control and ``.result`` is the last Figure drawn.
    The first drawing happens here, so an error in it is raised in the cell; an error on a later slider
    change is shown in the status line instead.

    Why not ``ipywidgets.interactive``: it shows the figure through an Output widget, and a headless runner
    (nbclient, hence nbmake) answers each output captured there with a widget-state message on the shell
    socket, the socket on which it is waiting for the cell's reply. After a large figure (the photo
    explorer's, about 0.4 MB) that reply went unnoticed until the per-cell timeout, ten minutes of a test
    run, although the kernel had sent it at once. An Image widget involves no Output capture.
    """
    import ipywidgets as W

    image, status = W.Image(format="png"), W.HTML(value="")
    box = W.VBox([*controls.values(), status, image])
    box.controls, box.result = dict(controls), None

    def draw(_change=None, raise_errors: bool = False):
        status.value = "<i>drawing...</i>"
        try:
            fig = fn(**{name: control.value for name, control in controls.items()})
        except Exception as error:  # a slider callback has no cell to raise into: say it on screen
            status.value = f"<b>{type(error).__name__}</b>: {html.escape(str(error))}"
            if raise_errors:
                raise
            return
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=fig.dpi, bbox_inches="tight")
        box.result, image.value, status.value = fig, buffer.getvalue(), ""

    draw(raise_errors=True)
    for control in controls.values():
        control.observe(draw, names="value")
    if display:
        from IPython.display import display as show

        show(box)
    return box


# ------------------------------------------------------------------------------------------ schedules
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


# ------------------------------------------------------------------------------------------ bases
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
                ax.imshow(_to_display(b[i] / max(np.abs(b[i]).max(), 1e-12)), cmap="gray", vmin=0, vmax=1)
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


# ------------------------------------------------------------------------------------------ trajectory
def trajectory_rows(report) -> dict[str, tuple[float, float]]:
    """{step key: (mean, std)} from a trajectory report dict (``report['steps']``), or from a list of
    experiment.Result objects / dicts (matched to trajectory steps by their recipe; seeds averaged)."""
    from .recipes import TRAJECTORY

    if isinstance(report, Mapping) and "steps" in report:
        return {r["key"]: (float(r["mean"]), float(r.get("std") or 0.0)) for r in report["steps"]
                if r.get("mean") is not None}
    by_recipe = {tuple(sorted(dataclasses.asdict(s.recipe).items())): s.key for s in TRAJECTORY}
    values: dict[str, list[float]] = {}
    for res in report:
        res = dataclasses.asdict(res) if dataclasses.is_dataclass(res) else dict(res)
        key = res.get("key") if res.get("key") in paper.STEPS else by_recipe.get(tuple(sorted(res["recipe"].items())))
        if key is not None:
            values.setdefault(key, []).append(float(res["probe_accuracy"] if "probe_accuracy" in res else res["mean"]))
    if not values:
        raise ValueError("no entry of the report matches a trajectory step (by key or by recipe)")
    return {k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0) for k, v in values.items()}


def trajectory_view(report, keys=None, sample_images: Callable | None = None, n_images: int = 8):
    """Ours vs the paper's linear-probe numbers for the chosen steps (plots.plot_trajectory), and, when
    ``sample_images(key) -> (N, C, H, W) in [-1, 1] or None`` is given, a strip of images per step."""
    ours = trajectory_rows(report)
    keys = list(keys) if keys else [s.key for s in paper.TRAJECTORY if s.key in ours]
    unknown = [k for k in keys if k not in paper.STEPS]
    if unknown:
        raise ValueError(f"keys {unknown} are not trajectory steps; known: {tuple(paper.STEPS)}")
    steps = [s for s in paper.TRAJECTORY if s.key in keys]
    ours = {k: v for k, v in ours.items() if k in keys}
    if sample_images is None:
        fig, ax = plt.subplots(figsize=(8, 0.5 * len(steps) + 1.4))
        plot_trajectory(steps, ours, ax=ax)
        return fig
    fig = plt.figure(figsize=(8 + 0.6 * n_images, 0.9 * len(steps) + 1.4))
    grid = fig.add_gridspec(len(steps), 2, width_ratios=[8, 0.6 * n_images], wspace=0.05)
    plot_trajectory(steps, ours, ax=fig.add_subplot(grid[:, 0]))
    for i, step in enumerate(steps):
        ax = fig.add_subplot(grid[i, 1])
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
