"""Images you bring, put in the project's layout: (N, C, size, size) float32 in [-1, 1], C = 1 (grey) or 3
(RGB), checked once where they enter; and a fixed per-class train/test split for images that come without one.

Used by :func:`ldae_lite.data.from_tensors`, :func:`ldae_lite.data.from_folder` and the probe of a trained
run on your images (:func:`ldae_lite.own_images.probe_images`).
"""

from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms.functional as TF

from .. import validate

SIZE = 32  # the project's image size: the budgets' patch grids are sized for 32 x 32 images
TEST_FRACTION = 0.2  # the share of each class held out as test images when no test split is given
LUMA = (0.299, 0.587, 0.114)  # RGB -> grey weights (ITU-R 601-2 luma, as PIL's convert("L"))


def as_images(images, where: str, size: int = SIZE, channels: int | None = None) -> torch.Tensor:
    """``images`` as (N, C, size, size) float32 in [-1, 1]; ``where`` names them in every error.

    images: a tensor or array (N, C, H, W) with C = 1 or 3, or (N, H, W) for grey; uint8 (0..255, scaled)
    or floats already in [-1, 1] (from [0, 1]: ``x * 2 - 1``). Not square or not size x size: resized so
    the shorter side is ``size`` (bilinear, antialiased), then centre-cropped. channels: 1 or 3 to
    convert grey <-> RGB (:func:`to_channels`), None to keep them.
    """
    size = check_size(size)
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.ndim == 3:
        x = x[:, None]  # (N, H, W) grey -> (N, 1, H, W)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"{where}: images must be (N, C, H, W) with C = 1 (grey) or 3 (RGB), or (N, H, W) grey; "
                         f"got shape {tuple(x.shape)} (channels last? use images.permute(0, 3, 1, 2))")
    if len(x) == 0:
        raise ValueError(f"{where}: no images; give at least one")
    if x.dtype == torch.uint8:
        x = x.float() / 127.5 - 1.0  # 0..255 -> [-1, 1]
    elif x.is_floating_point():
        x = validate.finite(x, where).float()
        lo, hi = float(x.min()), float(x.max())
        if lo < -1.0 - 1e-6 or hi > 1.0 + 1e-6:
            raise ValueError(f"{where}: values span [{lo:.4g}, {hi:.4g}]; images must be uint8 in 0..255 or "
                             f"floats in [-1, 1] (floats in [0, 1]: pass x * 2 - 1)")
    else:
        raise TypeError(f"{where}: images must be uint8 (0..255) or floating point in [-1, 1], got dtype {x.dtype}")
    x = resize(x, size)
    return (x if channels is None else to_channels(x, channels)).contiguous()


def check_size(size) -> int:
    """An image size: a multiple of 8 (the tokenizers cut images into 8 x 8 patches)."""
    size = validate.integer("size", size, low=8)
    if size % 8:
        raise ValueError(f"size={size} must be a multiple of 8 (the tokenizers cut images into 8 x 8 patches)")
    return size


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, size, size): the shorter side to ``size`` (bilinear, antialiased), then the
    centre crop; unchanged when already size x size. Stays in [-1, 1] (bilinear weights are convex)."""
    if x.shape[-2:] == (size, size):
        return x
    x = TF.resize(x, size, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)  # shorter side = size
    return TF.center_crop(x, [size, size]).clamp_(-1.0, 1.0)  # (N, C, size, size)


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, channels, H, W): RGB -> grey by luma weights, grey -> RGB by repetition."""
    channels = validate.one_of("channels", channels, (1, 3))
    if x.shape[1] == channels:
        return x
    if channels == 3:
        return x.repeat(1, 3, 1, 1)  # (N, 3, H, W)
    weights = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)  # (N, 1, H, W)


def as_labels(labels, where: str) -> torch.Tensor:
    """``labels`` as a 1-D int64 tensor (the range is checked once the number of classes is known)."""
    y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    if y.ndim != 1:
        raise ValueError(f"{where}: labels must be one integer per image, shape (N,), got shape {tuple(y.shape)}")
    validate.labels(y, max(int(y.max()) + 1, 1) if y.numel() else 1, where)  # integers, none negative
    return y.long()


def check_lengths(images: torch.Tensor, labels: torch.Tensor, where: str) -> None:
    if len(images) != len(labels):
        raise ValueError(f"{where}: {len(images)} images but {len(labels)} labels; give one label per image")


def split_indices(labels: torch.Tensor, test_fraction: float = TEST_FRACTION, seed: int = 0,
                  where: str = "images") -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed train/test split, class by class: (train indices, test indices), each sorted.

    Within each class (in the given order, e.g. files sorted by name), the indices are shuffled with a
    generator seeded by ``seed`` and the first round(test_fraction * n) go to test, keeping at least one
    image of every class in train. The same labels, fraction and seed give the same split on every machine.
    """
    test_fraction = validate.real("test_fraction", test_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
    generator = torch.Generator().manual_seed(validate.seed(seed))
    train, test = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        n_test = min(round(test_fraction * len(idx)), len(idx) - 1)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    test_idx = torch.cat(test).sort().values
    if len(test_idx) == 0:
        raise ValueError(f"{where}: {len(labels)} images are too few to hold out {test_fraction:.0%} of each class "
                         f"as test images; give test images, more images, or a larger test_fraction")
    return torch.cat(train).sort().values, test_idx
