"""Fashion-MNIST from its IDX files, and Fashion-MNIST-M built from it (each garment blended into a photo).

Where the files are looked for is described in :mod:`ldae_lite.data`. A file that is there but damaged
(a truncated or corrupted ``.gz``, an IDX header that does not match the data) raises
:class:`~ldae_lite.data.base.BrokenFileError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from .base import BrokenFileError, Dataset, from_uint8, is_empty_or_absent

# Fashion-MNIST class names in label order (Xiao et al., 2017).
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain or gzip), the format of MNIST and Fashion-MNIST, as a uint8 array.

    Header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions n, then n
    big-endian int32 sizes; data follows. So images (n = 3) start at byte 16 and labels (n = 1) at 8.
    A damaged file raises :class:`BrokenFileError` naming it.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except EOFError as err:  # the gzip stream stops before its end marker: the download or copy was cut short
        raise BrokenFileError(f"{path} is truncated: {err}; copy or download it again") from None
    except (gzip.BadGzipFile, zlib.error) as err:  # not gzip at all, or bytes changed (CRC check failed)
        raise BrokenFileError(f"{path} is a corrupted gzip file ({err}); copy or download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise BrokenFileError(f"{path} is not an unsigned-byte IDX file (header {raw[:4]!r})")
    ndim = raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise BrokenFileError(f"{path} is truncated: its header needs {offset} bytes, the file holds {len(raw)}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) - offset != int(np.prod(dims)):
        raise BrokenFileError(f"{path}: header says {dims} ({int(np.prod(dims))} bytes of data) but the file "
                              f"holds {len(raw) - offset} bytes of data; copy or download it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def find_idx(folder: Path, split: str) -> tuple[Path, Path] | None:
    """The (images, labels) files of a split in folder, plain or .gz, or None if either is missing."""
    found = []
    for stem in FILES[split]:
        hit = next((folder / (stem + ext) for ext in ("", ".gz") if (folder / (stem + ext)).is_file()), None)
        if hit is None:
            return None
        found.append(hit)
    return found[0], found[1]


def load_fashion_mnist(split: str, root: Path, debian_dir: Path, download: bool) -> tuple[Dataset, str]:
    """One split of Fashion-MNIST as (Dataset, note); the note says when torchvision downloaded it."""
    raw_dir = root / "FashionMNIST" / "raw"
    files = find_idx(raw_dir, split) or find_idx(debian_dir, split)
    note = ""
    if files is not None:
        images, labels = read_idx(files[0]), read_idx(files[1])
        source, names = str(files[0].parent), f"{files[0]} and {files[1]}"
    else:
        images, labels = _download(split, root, raw_dir, debian_dir, download)
        source, names = str(raw_dir), f"torchvision's download into {raw_dir}"
        note = f"fallback: nothing in {raw_dir} or {debian_dir}, so torchvision downloaded it"
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1 or len(images) != len(labels):
        raise BrokenFileError(f"Fashion-MNIST {split}: {names} hold images {images.shape} and labels "
                              f"{labels.shape}; expected (N, 28, 28) images and N labels")
    if len(labels) and labels.max() >= len(CLASSES):
        raise BrokenFileError(f"Fashion-MNIST {split}: {names} hold labels up to {labels.max()}; "
                              f"labels must be in [0, {len(CLASSES)})")
    x, y = from_uint8(images[:, None], labels, pad=2)  # 28x28 -> (N, 1, 32, 32), background -1
    return Dataset(x, y, CLASSES, "fashion-mnist", split, source), note


def _download(split: str, root: Path, raw_dir: Path, debian_dir: Path, download: bool):
    """torchvision's download into an empty (or absent) ``raw_dir``: (images, labels) as uint8 arrays, or
    FileNotFoundError saying where was looked, why nothing was downloaded and how to get the files."""
    tried = f"{raw_dir} (torchvision's raw layout); {debian_dir} (Debian package)"
    if not download:
        reason = "download=False"
    elif not is_empty_or_absent(raw_dir):
        held = ", ".join(sorted(p.name for p in raw_dir.iterdir())[:6])
        reason = (f"no download: {raw_dir} already holds files ({held}) and a download would write over them; "
                  f"complete them, or empty the folder to let torchvision download")
    else:
        try:
            from torchvision.datasets import FashionMNIST

            ds = FashionMNIST(str(root), train=split == "train", download=True)
            return ds.data.numpy(), ds.targets.numpy()
        except (OSError, RuntimeError) as err:  # URLError is an OSError; torchvision re-raises RuntimeError
            reason = f"download failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
    raise FileNotFoundError(
        f"Fashion-MNIST ({split}) not found. Looked in: {tried}; {reason}. Get it with "
        f"one of: `sudo apt-get install dataset-fashion-mnist` (offline, Debian/Ubuntu); or copy the "
        f"four IDX files ({', '.join(FILES['train'] + FILES['test'])}, plain or .gz) "
        f"into {raw_dir}/ (or set LDAE_DATA); or allow network access so torchvision can download "
        f"them (load(..., download=True)).")


# ------------------------------------------------------------------------------------- Fashion-MNIST-M

# Photos bundled with scikit-image (grey ones are repeated over 3 channels) plus scikit-learn's two.
COMPOSITE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                    "camera", "brick", "grass", "gravel", "moon", "coins", "clock")
COMPOSITE_SEED = {"train": 0, "test": 1}  # different crops for the two splits, the same on every machine


def composite_photos() -> list[np.ndarray]:
    """The background photos of fashion-mnist-m as uint8 (H, W, 3) arrays (15 of them)."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = []
    for name in COMPOSITE_PHOTOS:
        img = np.asarray(getattr(skimage.data, name)())
        photos.append(np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3])
    photos.extend(load_sample_images().images)  # china, flower: (427, 640, 3)
    return photos


def composite(garments: np.ndarray, photos: list[np.ndarray], seed: int) -> np.ndarray:
    """MNIST-M's blend: uint8 garments (N, 32, 32) into random 32x32 photo crops -> uint8 (N, 3, 32, 32).

    out = |crop - garment| per channel: a dark background keeps the photo, a bright garment inverts it,
    so the object's shape survives but its pixel values depend on whatever lies behind it.
    """
    rng = np.random.default_rng(seed)
    n, size = len(garments), garments.shape[-1]
    which = rng.integers(len(photos), size=n)
    out = np.empty((n, 3, size, size), dtype=np.uint8)
    for k, photo in enumerate(photos):
        idx = np.flatnonzero(which == k)
        rows = rng.integers(photo.shape[0] - size + 1, size=len(idx))
        cols = rng.integers(photo.shape[1] - size + 1, size=len(idx))
        grid = np.arange(size)
        crops = photo[(rows[:, None] + grid)[:, :, None], (cols[:, None] + grid)[:, None, :]]  # (n_k, 32, 32, 3)
        blend = np.abs(crops.astype(np.int16) - garments[idx][..., None].astype(np.int16))
        out[idx] = blend.astype(np.uint8).transpose(0, 3, 1, 2)
    return out


def load_fashion_mnist_m(split: str, root: Path, debian_dir: Path, download: bool) -> tuple[Dataset, str]:
    """One split of Fashion-MNIST-M, built from the same split of Fashion-MNIST: (Dataset, note)."""
    base, note = load_fashion_mnist(split, root, debian_dir, download)
    garments = ((base.images[:, 0] + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()  # (N, 32, 32)
    x, y = from_uint8(composite(garments, composite_photos(), COMPOSITE_SEED[split]), base.labels)
    source = f"garments read from {base.source}, blended into crops of {len(COMPOSITE_PHOTOS) + 2} bundled photos"
    return Dataset(x, y, CLASSES, "fashion-mnist-m", split, source), note
