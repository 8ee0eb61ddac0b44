"""Where the PCA-noise explorer's bases come from: the bundled photos, random patches of images, and a
patch PCA fitted once per source and patch size and kept in memory."""

from __future__ import annotations

import functools
import hashlib

import torch
import torch.nn.functional as F

from .. import data as data_mod
from ..tokenizers import PatchPCA

PHOTO_SIZE = (256, 384)  # the bundled 427x640 photos resized to the paper's 256-pixel scale


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
    determine D = 768 (p = 16) well; p = 32, D = 3072, is the slow one, a 3072 x 3072 eigendecomposition,
    done once and timed when ``verbose``) or a dataset name of :data:`ldae_lite.data.DATASETS` (its
    training images' own patch grid, as the tokenizer does).
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
    """A PCA fitted on random patches of the image x (C, H, W) itself (when neither a source nor a pca is
    given), cached by the image's bytes."""
    digest = hashlib.sha1(x.numpy().tobytes()).hexdigest()[:16]
    key = ("image", digest, int(patch_size))
    if key not in _PCA_CACHE:
        n = min(50_000, (x.shape[1] - patch_size + 1) * (x.shape[2] - patch_size + 1))
        patches = random_patches([x], patch_size, n)
        pca = PatchPCA(patches[0].numel(), patch_size, x.shape[0], patch_size, num_patches=n)
        pca.fit(patches, progress=False)
        _PCA_CACHE[key] = pca.eval()
    return _PCA_CACHE[key]
