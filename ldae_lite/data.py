"""Datasets as whole tensors: Fashion-MNIST-M (default), Fashion-MNIST, CIFAR-10 and sklearn's digits.

Every dataset comes back as one :class:`Dataset` holding all images as a float32 tensor of shape
(N, C, 32, 32) in [-1, 1] (the pixel range DiT uses) and int64 labels. These datasets are small
enough to live whole in memory (and on the device), so there is no per-batch Python loading.

One switch picks the series' dataset, as ``LDAE_BUDGET`` picks its size: ``LDAE_DATASET`` (read by
:func:`default_dataset`; default ``fashion-mnist-m``). Every notebook, the command line and
``make trajectory`` follow it. The default is Fashion-MNIST-M because on plain Fashion-MNIST raw pixels
already probe about as well as any representation learned here (the raw-pixel rows of
``results/lecture/trajectory_fashion-mnist_lecture.md`` and ``..._fashion-mnist-m_lecture.md``), which
leaves a learned representation no room to show; ``LDAE_DATASET=fashion-mnist`` switches back.

Where Fashion-MNIST is looked for, in order (the first hit wins, and where it was found is printed):

1. ``ROOT/FashionMNIST/raw/*-ubyte`` (torchvision's raw layout; plain or ``.gz``), where ROOT is
   ``$LDAE_DATA`` or ``<repo>/data``;
2. ``/usr/share/datasets/fashion-mnist`` (Debian/Ubuntu package ``dataset-fashion-mnist``), read
   directly: Debian re-compressed the files, so their checksums differ from the ones torchvision
   knows and torchvision's ``download=True`` would go to the network even though the data is here;
3. torchvision's own download into ROOT, where the network allows: the fallback, printed whenever it happens.

CIFAR-10 goes through ``torchvision.datasets.CIFAR10`` (``ROOT/cifar-10-batches-py``, then a download).
The digits (1797 images of 8x8) ship with scikit-learn and are always available.

``fashion-mnist-m`` is Fashion-MNIST built the way MNIST-M was built from MNIST (Ganin & Lempitsky,
2015): each garment is blended into a random 32x32 crop of a natural photo, ``|photo - garment|`` per
colour channel. The photos are the ones scikit-image and scikit-learn ship (no download), so the
dataset exists wherever Fashion-MNIST does. Raw pixels are a weak representation of it (the background
changes with every image), which leaves room for a learned one to show.
"""

from __future__ import annotations

import functools
import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

DATASETS = ("fashion-mnist", "fashion-mnist-m", "cifar10", "digits")
SPLITS = ("train", "test")
ENV_VAR = "LDAE_DATASET"
DEFAULT = "fashion-mnist-m"
# How each dataset is named in what is printed.
TITLES = {"fashion-mnist": "Fashion-MNIST", "fashion-mnist-m": "Fashion-MNIST-M", "cifar10": "CIFAR-10",
          "digits": "digits"}

# Fashion-MNIST class names in label order (Xiao et al., 2017).
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DIGIT_CLASSES = tuple(str(i) for i in range(10))

# Where `apt-get install dataset-fashion-mnist` puts the original IDX .gz files. A module constant so
# tests (and unusual installs) can point it elsewhere.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# sklearn's digits: the first 1500 images train, the remaining 297 test (a fixed split).
DIGITS_TRAIN = 1500

_FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


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
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[1] / "data"


def dataset_name(name: str | None = None) -> str:
    """A dataset's key in :data:`DATASETS`, checked; None reads ``$LDAE_DATASET`` (default fashion-mnist-m)."""
    from_env = name is None
    if from_env:
        name = os.environ.get(ENV_VAR) or DEFAULT
    key = str(name).strip().lower()
    if key not in DATASETS:
        source = f" (from ${ENV_VAR})" if from_env else ""
        raise ValueError(f"unknown dataset {name!r}{source}; choose one of {DATASETS}")
    return key


def default_dataset() -> str:
    """The series' dataset: ``$LDAE_DATASET`` if set, else :data:`DEFAULT`; an unknown name is an error."""
    return dataset_name(None)


# (name, split, source) of every split whose one-line description this process has printed.
_announced: set[tuple[str, str, str]] = set()


def load(name: str | None = None, split: str = "train", root: str | os.PathLike | None = None, *,
         download: bool = True, verbose: bool = True) -> Dataset:
    """Load one split of a dataset as a :class:`Dataset` of (N, C, 32, 32) images in [-1, 1].

    name: one of ``DATASETS``, or None for :func:`default_dataset`; split: "train" or "test"; root: where
    to look for and download data (default :func:`default_root`); download: allow torchvision to fetch
    what is not on disk. Parsed tensors are cached in memory, so a second call is fast.

    verbose: say where the data came from, once per dataset and split in a process (every training run
    loads its data again, and the same line each time would read like a warning). A fallback (a download)
    is printed whenever it happens.
    """
    key = dataset_name(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    root = Path(root).expanduser().resolve() if root is not None else default_root().resolve()
    misses = _load_cached.cache_info().misses
    dataset, note = _load_cached(key, split, str(root), str(DEBIAN_FASHION_MNIST), bool(download))
    fetched = _load_cached.cache_info().misses > misses  # read (or downloaded) now, not served from memory
    seen = (key, split, dataset.source)
    if verbose and (seen not in _announced or (fetched and note)):
        print(describe(dataset) + (f"; {note}" if note else ""))
        _announced.add(seen)
    return dataset


def describe(dataset: Dataset) -> str:
    """One line: ``Fashion-MNIST train: 60,000 images (1x32x32), read from /usr/share/datasets/fashion-mnist``."""
    shape = "x".join(str(s) for s in dataset.images.shape[1:])
    where = {"fashion-mnist": "read from ", "cifar10": "read from ", "digits": "from "}.get(dataset.name, "")
    return f"{TITLES[dataset.name]} {dataset.split}: {len(dataset):,} images ({shape}), {where}{dataset.source}"


def clear_cache() -> None:
    """Forget the parsed tensors (the next :func:`load` reads from disk again, and says so again)."""
    _load_cached.cache_clear()
    _announced.clear()


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, split: str, root: str, debian_dir: str, download: bool):
    if name == "fashion-mnist":
        return _fashion_mnist(split, Path(root), Path(debian_dir), download)
    if name == "cifar10":
        return _cifar10(split, Path(root), download)
    if name == "fashion-mnist-m":
        return _fashion_mnist_m(split, Path(root), Path(debian_dir), download)
    return _digits(split), ""


# ----------------------------------------------------------------------------------------- Fashion-MNIST

def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain or gzip), the format of MNIST and Fashion-MNIST, as a uint8 array.

    Header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions n, then n
    big-endian int32 sizes; data follows. So images (n = 3) start at byte 16 and labels (n = 1) at 8.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (header {raw[:4]!r})")
    ndim = raw[3]
    offset = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) - offset != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} but holds {len(raw) - offset} bytes of data")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def _find_idx(folder: Path, split: str) -> tuple[Path, Path] | None:
    """The (images, labels) files of a split in folder, plain or .gz, or None if either is missing."""
    found = []
    for stem in _FMNIST_FILES[split]:
        hit = next((folder / (stem + ext) for ext in ("", ".gz") if (folder / (stem + ext)).is_file()), None)
        if hit is None:
            return None
        found.append(hit)
    return found[0], found[1]


def _from_uint8(images: np.ndarray | torch.Tensor, labels, pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, C, H, W) -> float32 in [-1, 1], padded with -1 (background) on every side."""
    x = torch.from_numpy(np.asarray(images, dtype=np.float32)).div_(127.5).sub_(1.0)  # (N, C, H, W)
    if pad:
        x = F.pad(x, (pad, pad, pad, pad), value=-1.0)  # (N, C, H + 2 pad, W + 2 pad)
    return x.contiguous(), torch.from_numpy(np.asarray(labels, dtype=np.int64))


def _fashion_mnist(split: str, root: Path, debian_dir: Path, download: bool) -> tuple[Dataset, str]:
    raw_dir = root / "FashionMNIST" / "raw"
    tried = [f"{raw_dir} (torchvision's raw layout)", f"{debian_dir} (Debian package)"]
    note = ""
    files = _find_idx(raw_dir, split) or _find_idx(debian_dir, split)
    if files is not None:
        images, labels = read_idx(files[0]), read_idx(files[1])
        source = str(files[0].parent)
    else:
        images, labels, source, reason = None, None, str(raw_dir), "download=False"
        if download:
            try:
                from torchvision.datasets import FashionMNIST

                ds = FashionMNIST(str(root), train=split == "train", download=True)
                images, labels = ds.data.numpy(), ds.targets.numpy()
                note = f"fallback: nothing in {raw_dir} or {debian_dir}, so torchvision downloaded it"
            except (OSError, RuntimeError) as err:  # URLError is an OSError; torchvision re-raises RuntimeError
                reason = f"download failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
        if images is None:
            raise FileNotFoundError(
                f"Fashion-MNIST ({split}) not found. Looked in: {'; '.join(tried)}; {reason}. Get it with "
                f"one of: `sudo apt-get install dataset-fashion-mnist` (offline, Debian/Ubuntu); or copy the "
                f"four IDX files ({', '.join(_FMNIST_FILES['train'] + _FMNIST_FILES['test'])}, plain or .gz) "
                f"into {raw_dir}/ (or set LDAE_DATA); or allow network access so torchvision can download "
                f"them (load(..., download=True)).")
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise ValueError(f"Fashion-MNIST files in {source} have images {images.shape}, labels {labels.shape}")
    x, y = _from_uint8(images[:, None], labels, pad=2)  # 28x28 -> (N, 1, 32, 32), background -1
    return Dataset(x, y, CLASSES, "fashion-mnist", split, source), note


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


def _fashion_mnist_m(split: str, root: Path, debian_dir: Path, download: bool) -> tuple[Dataset, str]:
    base, note = _fashion_mnist(split, root, debian_dir, download)
    garments = ((base.images[:, 0] + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()  # (N, 32, 32)
    x, y = _from_uint8(composite(garments, composite_photos(), COMPOSITE_SEED[split]), base.labels)
    source = f"garments read from {base.source}, blended into crops of {len(COMPOSITE_PHOTOS) + 2} bundled photos"
    return Dataset(x, y, CLASSES, "fashion-mnist-m", split, source), note


# --------------------------------------------------------------------------------------------- CIFAR-10

def _cifar10(split: str, root: Path, download: bool) -> tuple[Dataset, str]:
    from torchvision.datasets import CIFAR10

    folder = root / CIFAR10.base_folder
    note = ""
    try:
        ds = CIFAR10(str(root), train=split == "train", download=False)  # checks md5s, then unpickles
    except RuntimeError as err:
        reason = f"nothing usable in {folder} (torchvision: {err})"
        if download:
            try:
                ds = CIFAR10(str(root), train=split == "train", download=True)
                note = f"fallback: nothing usable in {folder}, so torchvision downloaded it"
            except (OSError, RuntimeError) as err2:  # URLError is an OSError
                reason += f"; download failed: {type(err2).__name__}: {str(err2).splitlines()[0][:200]}"
        else:
            reason += "; download=False"
        if not note:
            raise FileNotFoundError(
                f"CIFAR-10 ({split}) not found. {reason}. Get it with one of: allow network access so "
                f"torchvision can download it (170 MB, load('cifar10', download=True)); or extract "
                f"cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html into {root}/ "
                f"(or set LDAE_DATA).") from None
    images = np.asarray(ds.data).transpose(0, 3, 1, 2)  # (N, 32, 32, 3) HWC -> (N, 3, 32, 32)
    x, y = _from_uint8(images, ds.targets)
    return Dataset(x, y, tuple(ds.classes), "cifar10", split, str(folder)), note


# --------------------------------------------------------------------------------------------- digits

def _digits(split: str) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32)[:, None] / 8.0 - 1.0  # 0..16 -> (N, 1, 8, 8)
    x = x.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)  # nearest x4 -> (N, 1, 32, 32)
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    part = slice(0, DIGITS_TRAIN) if split == "train" else slice(DIGITS_TRAIN, None)
    return Dataset(x[part].contiguous(), y[part].contiguous(), DIGIT_CLASSES, "digits", split,
                   "sklearn.datasets.load_digits (bundled with scikit-learn)")


# --------------------------------------------------------------------------------------------- photos

@functools.lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_sample_images

    return tuple(img.astype(np.float32) / 127.5 - 1.0 for img in load_sample_images().images)


def sample_photos() -> list[np.ndarray]:
    """scikit-learn's two bundled photos (china, flower) as (427, 640, 3) float32 arrays in [-1, 1].

    Real photographs at a resolution where the paper's 16x16 patches make sense (for the noise views).
    """
    return [p.copy() for p in _photos()]
