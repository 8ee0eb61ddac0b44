"""A folder of your own images as a dataset, in torchvision's ImageFolder layout: one sub-folder per class,
``root/<class>/<image>`` (images may sit deeper inside a class folder), labels from the class folders'
names in sorted order.

The splits: ``root/train/<class>/...`` and ``root/test/<class>/...`` when both exist (the test classes
must be among the training classes); otherwise the one folder is split class by class, a fixed
``test_fraction`` of each class held out as test images (the files in name order, shuffled with ``seed``:
:func:`ldae_lite.data.split_indices`).

Files are read with PIL as RGB (palette, grey and 16-bit images converted, an alpha channel dropped),
resized so the shorter side is ``size`` and centre-cropped (32 by default), and kept as grey (1 channel)
when every image is grey (R = G = B), else RGB; ``channels=1`` or ``3`` forces either. A file that PIL
cannot read raises :class:`~ldae_lite.data.base.BrokenFileError` naming it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from .base import DATASETS, BrokenFileError
from .convert import SIZE, TEST_FRACTION, check_size, resize
from .own import check_name, from_tensors, get

# The file suffixes torchvision's ImageFolder reads (torchvision.datasets.folder.IMG_EXTENSIONS).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

_read_from: dict[tuple, tuple[str, object]] = {}  # (folder, options) -> (name, its registration)


def from_folder(path: str | os.PathLike, *, name: str | None = None, size: int = SIZE, channels: int | None = None,
                test_fraction: float = TEST_FRACTION, seed: int = 0) -> str:
    """Read a folder of images (the layout above) and register it; returns its dataset name.

    name: default :func:`folder_name` of the folder. size, channels, test_fraction, seed: as above.
    """
    size = check_size(size)
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"no folder {root} (from {str(path)!r}): a dataset of your own is a folder with one "
                                f"sub-folder of images per class, root/<class>/<image>")
    name = check_name(name) if name is not None else folder_name(root)
    splits = _split_folders(root)
    classes = _class_folders(splits[0], name)
    x, y = _read_split(splits[0], classes, size, name)
    if len(splits) == 1:
        test, source = (None, None), f"folder {root}"
    else:
        extra = sorted(set(_class_folders(splits[1], name)) - set(classes))
        if extra:
            raise ValueError(f"dataset {name!r}: test classes {extra} in {splits[1]} have no folder in {splits[0]}; "
                             f"the test classes must be among the training classes {classes}")
        test, source = _read_split(splits[1], classes, size, name), f"folder {root} (train/ and test/)"
    if channels is None:  # grey when every image is (R = G = B), else RGB
        grey = all(bool((t[:, :1] == t).all()) for t in (x, test[0]) if t is not None)
        channels = 1 if grey else 3
    name = from_tensors(name, x, y, *test, classes=classes, size=size, channels=channels,
                        test_fraction=test_fraction, seed=seed, source=source)
    _read_from[(root, size, channels, test_fraction, seed)] = (name, get(name))
    return name


def folder_dataset(path: str | os.PathLike) -> str:
    """The dataset name of a folder given where a dataset name goes (``--dataset ./my_images``,
    ``LDAE_DATASET``): read and registered once with the defaults of :func:`from_folder`, then reused."""
    root = Path(path).expanduser().resolve()
    for (folder, *_), (name, entry) in _read_from.items():
        if folder == root and get(name) is entry:
            return name
    return from_folder(root)


def folder_name(root: Path) -> str:
    """A dataset name from a folder's name: lower case, other characters than letters, digits, '.', '_'
    and '-' replaced by '-'; ``-folder`` appended to a built-in dataset's name (``cifar10`` -> ``cifar10-folder``)."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", root.name.lower()).strip("-._")[:57] or "folder"
    return f"{slug}-folder" if slug in DATASETS else slug


def looks_like_path(text: str) -> bool:
    """True for a string meant as a folder, not a dataset name: it holds a '/' (or the OS's separator),
    starts with '~', or is '.' or '..'."""
    return "/" in text or os.sep in text or text.startswith("~") or text in (".", "..")


def _split_folders(root: Path) -> tuple[Path, ...]:
    """(train folder, test folder) or (the one folder to split)."""
    train, test = root / "train", root / "test"
    if train.is_dir() and test.is_dir():
        return train, test
    if train.is_dir() or test.is_dir():
        have, lack = ("train", "test") if train.is_dir() else ("test", "train")
        raise ValueError(f"{root} has a {have}/ folder but no {lack}/: give both train/<class>/ and test/<class>/, "
                         f"or put the class folders directly in {root} (then a fixed share of each is held out)")
    return (root,)


def _class_folders(folder: Path, name: str) -> tuple[str, ...]:
    classes = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not classes:
        raise ValueError(f"dataset {name!r}: {folder} has no class folders; the layout is {folder}/<class>/<image> "
                         f"(one sub-folder of images per class)")
    return classes


def _read_split(folder: Path, classes: tuple[str, ...], size: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image under folder/<class>/ for the classes present there: (N, 3, size, size) in [-1, 1], (N,) labels."""
    images, labels = [], []
    for label, cls in enumerate(classes):
        if not (folder / cls).is_dir():
            continue  # a test split without this class
        files = sorted(p for p in (folder / cls).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise ValueError(f"dataset {name!r}: class folder {folder / cls} holds no images; every class needs "
                             f"at least one file ending in {', '.join(IMAGE_SUFFIXES)}")
        images.extend(read_image(f, size) for f in files)
        labels += [label] * len(files)
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)  # (N, 3, size, size), (N,)


def read_image(path: Path, size: int = SIZE) -> torch.Tensor:
    """One image file as (3, size, size) float32 in [-1, 1] (RGB, shorter side resized, centre-cropped)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"))  # (H, W, 3) uint8; decodes the whole file
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:  # UnidentifiedImageError is OSError
        raise BrokenFileError(f"{path} cannot be read as an image ({type(err).__name__}: {err})") from None
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 127.5 - 1.0  # (3, H, W) in [-1, 1]
    return resize(x[None], size)[0]  # (3, size, size)
