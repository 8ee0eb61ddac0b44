"""Cut images into non-overlapping patches and put them back.

A token in this project is always one patch: a (p, p, C) block of pixels flattened to a vector of
D = p * p * C numbers. Every tokenizer, the noise process and the widgets share these two functions, so
the layout (row-major grid, pixels then channels inside a patch) is defined in exactly one place.
"""

from __future__ import annotations

import torch


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Split images into flattened patches.

    images: (N, C, H, W) with H and W divisible by patch_size.
    returns: (N, L, p * p * C) with L = (H / p) * (W / p), patches in row-major grid order.
    """
    if images.ndim != 4:
        raise ValueError(f"patchify expects images of shape (N, C, H, W), got {tuple(images.shape)}")
    n, c, h, w = images.shape
    p = int(patch_size)
    if p < 1 or h % p or w % p:
        raise ValueError(f"patch_size={patch_size} must divide the image size {h}x{w}")
    x = images.reshape(n, c, h // p, p, w // p, p)  # (N, C, h, p, w, p)
    x = x.permute(0, 2, 4, 3, 5, 1)  # (N, h, w, p, p, C)
    return x.reshape(n, (h // p) * (w // p), p * p * c)  # (N, L, D)


def unpatchify(tokens: torch.Tensor, patch_size: int, channels: int, grid: tuple[int, int] | None = None):
    """Inverse of :func:`patchify`.

    tokens: (N, L, p * p * C); grid: (h, w) patches per column and row, square when None.
    returns: (N, C, h * p, w * p).
    """
    n, length, dim = tokens.shape
    p, c = int(patch_size), int(channels)
    if dim != p * p * c:
        raise ValueError(f"token dimension {dim} != patch_size**2 * channels = {p * p * c}")
    if grid is None:
        side = int(round(length**0.5))
        if side * side != length:
            raise ValueError(f"{length} tokens do not form a square grid; pass grid=(h, w)")
        grid = (side, side)
    gh, gw = grid
    if gh * gw != length:
        raise ValueError(f"grid {grid} holds {gh * gw} patches, not {length}")
    x = tokens.reshape(n, gh, gw, p, p, c).permute(0, 5, 1, 3, 2, 4)  # (N, C, h, p, w, p)
    return x.reshape(n, c, gh * p, gw * p)
