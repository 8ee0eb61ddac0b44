"""Datasets as whole tensors: Fashion-MNIST-M (default), Fashion-MNIST, CIFAR-10, sklearn's digits, and
your own images.

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
3. torchvision's own download into ROOT, where the network allows: the fallback, printed whenever it
   happens, and only into an empty (or absent) ``ROOT/FashionMNIST/raw``: nothing is downloaded over files.

CIFAR-10 goes through ``torchvision.datasets.CIFAR10`` (``ROOT/cifar-10-batches-py``, then a download;
:mod:`ldae_lite.data.cifar10`). A file that is there but damaged raises :class:`BrokenFileError` naming it.
The digits (1797 images of 8x8) ship with scikit-learn and are always available.

``fashion-mnist-m`` is Fashion-MNIST built the way MNIST-M was built from MNIST (Ganin & Lempitsky,
2015): each garment is blended into a random 32x32 crop of a natural photo, ``|photo - garment|`` per
colour channel. The photos are the ones scikit-image and scikit-learn ship (no download), so the
dataset exists wherever Fashion-MNIST does. Raw pixels are a weak representation of it (the background
changes with every image), which leaves room for a learned one to show.

Your own images become a dataset with :func:`from_tensors` (tensors you hold) or :func:`from_folder` (a
folder in torchvision's ImageFolder layout, ``root/<class>/<image>``; :mod:`ldae_lite.data.folder`).
Both register the images under a name that then works wherever a built-in name does; a folder's path
works there too (``--dataset ./my_images``, ``LDAE_DATASET=./my_images``: anything with a '/').
Cache keys hold a fingerprint of the images (:func:`identity`), not only the name.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from . import fashion_mnist, own
from .base import DATASETS, SPLITS, TITLES, BrokenFileError, Dataset, default_root
from .bundled import DIGIT_CLASSES, DIGITS_TRAIN, load_digits, sample_photos
from .cifar10 import load_cifar10
from .convert import TEST_FRACTION, as_images, as_labels, check_lengths, split_indices
from .fashion_mnist import CLASSES, COMPOSITE_PHOTOS, COMPOSITE_SEED, composite, composite_photos, read_idx
from .folder import folder_dataset, from_folder, looks_like_path
from .own import from_tensors, registered

ENV_VAR = "LDAE_DATASET"
DEFAULT = "fashion-mnist-m"
NUM_CLASSES = 10  # every built-in dataset has ten classes

# Where `apt-get install dataset-fashion-mnist` puts the original IDX .gz files. A module constant so
# tests (and unusual installs) can point it elsewhere.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def dataset_name(name: str | os.PathLike | None = None) -> str:
    """A dataset's name, checked: a built-in one of :data:`DATASETS`, one registered with
    :func:`from_tensors` / :func:`from_folder`, or a folder's path (read and registered, its name returned).
    None reads ``$LDAE_DATASET`` (default fashion-mnist-m)."""
    from_env = name is None
    if from_env:
        name = os.environ.get(ENV_VAR) or DEFAULT
    if isinstance(name, os.PathLike) or looks_like_path(str(name).strip()):
        return folder_dataset(str(name).strip())
    key = str(name).strip().lower()
    if key in DATASETS or own.get(key) is not None:
        return key
    source = f" (from ${ENV_VAR})" if from_env else ""
    mine = f", or one registered in this process {own.registered()}" if own.registered() else ""
    raise ValueError(f"unknown dataset {name!r}{source}; choose one of {DATASETS}{mine}, or give a folder of "
                     f"your own images by its path (with a '/', e.g. ./my_images)")


def default_dataset() -> str:
    """The series' dataset: ``$LDAE_DATASET`` if set, else :data:`DEFAULT`; an unknown name is an error."""
    return dataset_name(None)


def identity(name: str | os.PathLike | None = None) -> str:
    """What stands for a dataset in cache keys and file names: a built-in dataset's name, or a registered
    one's name and the fingerprint of its images (``my-photos-3fa2b1c4d5e6``), so that two different
    datasets registered under the same name never share cached runs."""
    key = dataset_name(name)
    return own.identity(key) if own.get(key) is not None else key


def num_classes(name: str | os.PathLike | None = None) -> int:
    """How many classes a dataset has (the rows of a class-conditional model's label table)."""
    key = dataset_name(name)
    entry = own.get(key)
    return NUM_CLASSES if entry is None else len(entry.train.classes)


# (dataset, split, source) of every split whose one-line description this process has printed.
_announced: set[tuple[str, str, str]] = set()


def load(name: str | os.PathLike | None = None, split: str = "train", root: str | os.PathLike | None = None, *,
         download: bool = True, verbose: bool = True) -> Dataset:
    """Load one split of a dataset as a :class:`Dataset` of (N, C, 32, 32) images in [-1, 1].

    name: anything :func:`dataset_name` accepts, None for :func:`default_dataset`; split: "train" or
    "test"; root: where to look for and download data (default :func:`default_root`); download: allow
    torchvision to fetch what is not on disk. Parsed tensors are cached in memory, so a second call is
    fast. A registered dataset of your own is served from memory (root and download do not apply).

    verbose: say where the data came from, once per dataset and split in a process (every training run
    loads its data again, and the same line each time would read like a warning). A fallback (a download)
    is printed whenever it happens.
    """
    key = dataset_name(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    entry = own.get(key)
    if entry is not None:
        dataset, note, fetched = getattr(entry, split), "", False
    else:
        root = Path(root).expanduser().resolve() if root is not None else default_root().resolve()
        misses = _load_cached.cache_info().misses
        dataset, note = _load_cached(key, split, str(root), str(DEBIAN_FASHION_MNIST), bool(download))
        fetched = _load_cached.cache_info().misses > misses  # read (or downloaded) now, not served from memory
    seen = (identity(key), split, dataset.source)
    if verbose and (seen not in _announced or (fetched and note)):
        print(describe(dataset) + (f"; {note}" if note else ""))
        _announced.add(seen)
    return dataset


def describe(dataset: Dataset) -> str:
    """One line: ``Fashion-MNIST train: 60,000 images (1x32x32), read from /usr/share/datasets/fashion-mnist``."""
    shape = "x".join(str(s) for s in dataset.images.shape[1:])
    where = {"fashion-mnist": "read from ", "cifar10": "read from "}.get(dataset.name, "from ")
    where = "" if dataset.name == "fashion-mnist-m" else where
    return (f"{TITLES.get(dataset.name, dataset.name)} {dataset.split}: {len(dataset):,} images ({shape}), "
            f"{where}{dataset.source}")


def clear_cache() -> None:
    """Forget the parsed tensors (the next :func:`load` reads from disk again, and says so again). Datasets
    of your own stay registered."""
    _load_cached.cache_clear()
    _announced.clear()


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, split: str, root: str, debian_dir: str, download: bool) -> tuple[Dataset, str]:
    if name == "fashion-mnist":
        return fashion_mnist.load_fashion_mnist(split, Path(root), Path(debian_dir), download)
    if name == "cifar10":
        return load_cifar10(split, Path(root), download)
    if name == "fashion-mnist-m":
        return fashion_mnist.load_fashion_mnist_m(split, Path(root), Path(debian_dir), download)
    return load_digits(split), ""


__all__ = ["CLASSES", "COMPOSITE_PHOTOS", "COMPOSITE_SEED", "DATASETS", "DEBIAN_FASHION_MNIST", "DEFAULT",
           "DIGITS_TRAIN", "DIGIT_CLASSES", "ENV_VAR", "NUM_CLASSES", "SPLITS", "TEST_FRACTION", "TITLES",
           "BrokenFileError", "Dataset", "as_images", "as_labels", "check_lengths", "clear_cache", "composite",
           "composite_photos", "dataset_name", "default_dataset", "default_root", "describe", "from_folder",
           "from_tensors", "identity", "load", "num_classes", "read_idx", "registered", "sample_photos",
           "split_indices"]
