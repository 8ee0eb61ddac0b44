"""What every source of images shares: the :class:`Dataset` it returns, the names of the built-in datasets,
the error a damaged file raises, and the conversion of uint8 pixels to the project's [-1, 1] floats."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

DATASETS = ("fashion-mnist", "fashion-mnist-m", "cifar10", "digits")  # the built-in datasets
SPLITS = ("train", "test")
# How each dataset is named in what is printed. A dataset of your own adds its name when it is registered
# (:mod:`ldae_lite.data.own`), so ``TITLES[name]`` works for every dataset a name stands for.
TITLES = {"fashion-mnist": "Fashion-MNIST", "fashion-mnist-m": "Fashion-MNIST-M", "cifar10": "CIFAR-10",
          "digits": "digits"}


class BrokenFileError(ValueError):
    """A data file that exists but cannot be read as what it should be (truncated, corrupted, failing a
    checksum). The message names the file and what is wrong with it; nothing is downloaded over it."""


@dataclass(frozen=True)
class Dataset:
    """One split of one dataset, whole, on the CPU. Treat the tensors as read-only: they are cached."""

    images: torch.Tensor  # (N, C, 32, 32) float32 in [-1, 1]
    labels: torch.Tensor  # (N,) int64
    classes: tuple[str, ...]
    name: str
    split: str
    source: str  # where the data was found

    def __len__(self) -> int:
        return len(self.labels)


def default_root() -> Path:
    """``$LDAE_DATA`` if set, else the repository's ``data/`` folder."""
    env = os.environ.get("LDAE_DATA")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "data"


def from_uint8(images: np.ndarray | torch.Tensor, labels, pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, C, H, W) -> float32 in [-1, 1], padded with -1 (background) on every side."""
    x = torch.from_numpy(np.asarray(images, dtype=np.float32)).div_(127.5).sub_(1.0)  # (N, C, H, W)
    if pad:
        x = F.pad(x, (pad, pad, pad, pad), value=-1.0)  # (N, C, H + 2 pad, W + 2 pad)
    return x.contiguous(), torch.from_numpy(np.asarray(labels, dtype=np.int64))


def is_empty_or_absent(folder: Path) -> bool:
    """True when ``folder`` does not exist or holds nothing: the only places a download may write to, so
    that nothing is ever downloaded over files a user put there."""
    return not folder.exists() or (folder.is_dir() and not any(folder.iterdir()))
