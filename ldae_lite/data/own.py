"""Datasets of your own, registered under a name: then the name works wherever a built-in dataset's does
(``experiment.run``, the probes, ``load_split``, ``pixel_baseline``, ``LDAE_DATASET``).

:func:`from_tensors` registers images you hold as tensors; :func:`ldae_lite.data.from_folder` reads a folder
of image files and registers them the same way. Both check the images once, here, and refuse what cannot
be used with an error naming the dataset and split: values that are not finite, labels out of range, a
class without a training image, images and labels of different lengths.

Every cache key of a registered dataset holds :func:`identity`, its name *and* a fingerprint of its
tensors: registering other images under the same name never reuses what was trained on the old ones.

A registration lives in this process and in the processes it starts (the workers of a parallel
trajectory): the tensors are written to a temporary file named in the environment variable
``LDAE_OWN_DATASETS``, which a new process reads when it meets a name it does not know. The files are
removed when the process that wrote them exits.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import validate
from ..checkpoint import atomic_save
from .base import DATASETS, TITLES, BrokenFileError, Dataset
from .convert import SIZE, TEST_FRACTION, as_images, as_labels, check_lengths, split_indices, to_channels

SHARE_ENV_VAR = "LDAE_OWN_DATASETS"  # {name: temporary file} for the processes this one starts
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # a name is part of file names under runs/


@dataclass(frozen=True)
class Registered:
    """A dataset of your own: both splits, and the fingerprint of their tensors (part of every cache key)."""

    train: Dataset
    test: Dataset
    fingerprint: str


_registry: dict[str, Registered] = {}
_written: dict[str, Path] = {}  # the temporary files this process wrote, by dataset name


def check_name(name) -> str:
    """A name for a dataset of your own: lower-case letters, digits, '.', '_' and '-', not a built-in name."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError(f"dataset name {name!r} is not allowed: use 1-64 lower-case letters, digits, '.', '_' or "
                         f"'-', starting with a letter or digit (it becomes part of file names), e.g. 'my-photos'")
    if name in DATASETS:
        raise ValueError(f"dataset name {name!r} is a built-in dataset's; choose another name than {DATASETS}")
    return name


def registered() -> tuple[str, ...]:
    """The names of the datasets registered in this process (or by the process that started it)."""
    return tuple(sorted(set(_registry) | set(_shared())))


def get(name: str) -> Registered | None:
    """The registered dataset of that name, or None."""
    return _registry.get(name) or _from_environment(name)


def identity(name: str) -> str:
    """What stands for a registered dataset in cache keys and file names: ``<name>-<fingerprint>``."""
    return f"{name}-{get(name).fingerprint}"


def from_tensors(name: str, train_images, train_labels, test_images=None, test_labels=None, *,
                 classes=None, size: int = SIZE, channels: int | None = None, test_fraction: float = TEST_FRACTION,
                 seed: int = 0, source: str = "tensors given in memory") -> str:
    """Register images held as tensors (or arrays) as the dataset ``name``; returns the name.

    images: (N, C, H, W) with C = 1 or 3, or (N, H, W) grey; uint8 0..255 or floats in [-1, 1]; resized
    and centre-cropped to size x size when they are not (:func:`ldae_lite.data.as_images`). labels: (N,)
    integers in [0, K). classes: the K class names (default "0" .. "K-1", K = the largest label + 1);
    every class needs a training image. Without test images, ``test_fraction`` of each class is held out
    by a fixed split (:func:`ldae_lite.data.split_indices`, ``seed``). channels: 1 or 3 to convert all
    images, None to keep them (train and test must then agree).
    """
    name = check_name(name)
    where = f"dataset {name!r}"
    x, y = as_images(train_images, f"{where}, train images", size, channels), as_labels(
        train_labels, f"{where}, train labels")
    check_lengths(x, y, f"{where}, train split")
    if (test_images is None) != (test_labels is None):
        raise ValueError(f"{where}: give both test_images and test_labels, or neither (then {test_fraction} of "
                         f"each class is held out)")
    if test_images is None:
        train_idx, test_idx = split_indices(y, test_fraction, seed, where)
        x, y, x_test, y_test = x[train_idx], y[train_idx], x[test_idx], y[test_idx]
        source += f"; {test_fraction:.0%} of each class held out as test (seed {seed})"
    else:
        x_test = as_images(test_images, f"{where}, test images", size, channels)
        y_test = as_labels(test_labels, f"{where}, test labels")
        check_lengths(x_test, y_test, f"{where}, test split")
        if x_test.shape[1] != x.shape[1]:
            x_test = to_channels(x_test, x.shape[1])  # grey test images beside RGB training ones, or the reverse
    classes = _classes(classes, y, y_test, where)
    train, test = Dataset(x, y, classes, name, "train", source), Dataset(x_test, y_test, classes, name, "test", source)
    return register(train, test)


def _classes(classes, y: torch.Tensor, y_test: torch.Tensor, where: str) -> tuple[str, ...]:
    """The class names, checked: labels in range, at least two classes, a training image for each."""
    k = max(int(y.max()), int(y_test.max())) + 1
    classes = tuple(str(i) for i in range(k)) if classes is None else tuple(str(c) for c in classes)
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError(f"{where}: classes={classes} must name at least two classes, each once")
    validate.labels(y, len(classes), f"{where}, train labels")
    validate.labels(y_test, len(classes), f"{where}, test labels")
    empty = [c for i, c in enumerate(classes) if not bool((y == i).any())]
    if empty:
        raise ValueError(f"{where}: classes {empty} have no training image; every class of {classes} needs at "
                         f"least one (labels are indices into classes)")
    return classes


def fingerprint(train: Dataset, test: Dataset) -> str:
    """A hash of both splits' images, labels and class names (12 hex digits)."""
    h = hashlib.sha256(json.dumps(list(train.classes)).encode())
    for ds in (train, test):
        for t in (ds.images, ds.labels):
            h.update(str(tuple(t.shape)).encode())
            h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def register(train: Dataset, test: Dataset) -> str:
    """Register checked splits under ``train.name`` (replacing what was registered under it); returns the name."""
    name = train.name
    entry = Registered(train, test, fingerprint(train, test))
    old = _registry.get(name)
    if old is not None and old.fingerprint == entry.fingerprint:
        return name  # the same images again (a notebook cell run twice): nothing to do
    if old is not None:
        print(f"dataset {name!r} registered again with other images (fingerprint {old.fingerprint} -> "
              f"{entry.fingerprint}): runs cached for the old images are kept apart")
    _registry[name] = entry
    TITLES[name] = name
    _share(name, entry)
    return name


# ------------------------------------------------------------------------- the processes this one starts

def _shared() -> dict[str, str]:
    text = os.environ.get(SHARE_ENV_VAR) or "{}"
    try:
        return dict(json.loads(text))
    except (json.JSONDecodeError, TypeError, ValueError):
        raise ValueError(f"${SHARE_ENV_VAR} must be a JSON object {{name: file}}, got {text[:200]!r}") from None


def _share(name: str, entry: Registered) -> None:
    """Write the tensors to a temporary file and name it in the environment the next process inherits."""
    path = Path(tempfile.gettempdir()) / f"ldae-own-{os.getpid()}-{name}-{entry.fingerprint}.pt"
    payload = {"fingerprint": entry.fingerprint, "classes": list(entry.train.classes), "source": entry.train.source,
               "train": (entry.train.images, entry.train.labels), "test": (entry.test.images, entry.test.labels)}
    atomic_save(payload, path)
    if name in _written:
        _written.pop(name).unlink(missing_ok=True)
    _written[name] = path
    os.environ[SHARE_ENV_VAR] = json.dumps({**_shared(), name: str(path)})


def _from_environment(name: str) -> Registered | None:
    """The dataset a parent process registered under ``name`` (see the module's docstring), or None."""
    path = _shared().get(name)
    if path is None:
        return None
    try:
        payload = torch.load(path, weights_only=True)
    except (OSError, RuntimeError, EOFError) as err:
        raise BrokenFileError(f"dataset {name!r} was registered by the process that started this one, but its "
                              f"copy {path} cannot be read ({type(err).__name__}: {err}); register it again") from None
    classes, source = tuple(payload["classes"]), payload["source"]
    train = Dataset(*payload["train"], classes, name, "train", source)
    test = Dataset(*payload["test"], classes, name, "test", source)
    entry = Registered(train, test, fingerprint(train, test))
    if entry.fingerprint != payload["fingerprint"]:
        raise BrokenFileError(f"dataset {name!r}: its copy {path} does not hold the images registered "
                              f"(fingerprint {entry.fingerprint}, expected {payload['fingerprint']})")
    _registry[name] = entry
    TITLES[name] = name
    return entry


@atexit.register
def _remove_written() -> None:
    for path in _written.values():
        path.unlink(missing_ok=True)
