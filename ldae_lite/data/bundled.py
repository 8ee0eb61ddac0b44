"""Images that ship with scikit-learn, always available without a download: the digits dataset and two photos."""

from __future__ import annotations

import functools

import numpy as np
import torch

from .base import Dataset

DIGIT_CLASSES = tuple(str(i) for i in range(10))
# sklearn's digits: the first 1500 images train, the remaining 297 test (a fixed split).
DIGITS_TRAIN = 1500


def load_digits(split: str) -> Dataset:
    """One split of sklearn's digits: 8x8 images upsampled x4 (nearest) to (N, 1, 32, 32) in [-1, 1]."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32)[:, None] / 8.0 - 1.0  # 0..16 -> (N, 1, 8, 8)
    x = x.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)  # nearest x4 -> (N, 1, 32, 32)
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    part = slice(0, DIGITS_TRAIN) if split == "train" else slice(DIGITS_TRAIN, None)
    return Dataset(x[part].contiguous(), y[part].contiguous(), DIGIT_CLASSES, "digits", split,
                   "sklearn.datasets.load_digits (bundled with scikit-learn)")


@functools.lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_sample_images

    return tuple(img.astype(np.float32) / 127.5 - 1.0 for img in load_sample_images().images)


def sample_photos() -> list[np.ndarray]:
    """scikit-learn's two bundled photos (china, flower) as (427, 640, 3) float32 arrays in [-1, 1].

    Real photographs at a resolution where the paper's 16x16 patches make sense (for the noise views).
    """
    return [p.copy() for p in _photos()]
