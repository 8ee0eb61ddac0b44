"""CIFAR-10 through torchvision's own loader (``ROOT/cifar-10-batches-py``, md5-checked), and what to do when
that folder is missing or damaged.

Nothing is ever downloaded over files a user put there: torchvision's ``download=True`` writes the archive
into ROOT and extracts it over ``cifar-10-batches-py``, so it is only called when that folder is empty or
absent. A folder whose files fail torchvision's checksum (or miss some) is reported as such, naming the
files, not as "not found"; an intact ``cifar-10-python.tar.gz`` in ROOT is extracted without the network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import BrokenFileError, Dataset, from_uint8, is_empty_or_absent

HOW_TO_GET_IT = ("allow network access so torchvision can download it (170 MB, load('cifar10', download=True)); "
                 "or extract cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html into {root}/ "
                 "(or set LDAE_DATA)")


def load_cifar10(split: str, root: Path, download: bool) -> tuple[Dataset, str]:
    """One split of CIFAR-10 as (Dataset, note); the note says when it was downloaded or extracted."""
    from torchvision.datasets import CIFAR10

    train = split == "train"
    note = ""
    try:
        ds = CIFAR10(str(root), train=train, download=False)  # checks every file's md5, then unpickles
    except RuntimeError:  # torchvision says "not found or corrupted" for both: find out which, and where
        _diagnose(root)
        archive = root / CIFAR10.filename
        if archive.is_file():  # intact (checked above): torchvision extracts it and downloads nothing
            note = f"extracted from {archive}"
        elif not download:
            raise FileNotFoundError(f"CIFAR-10 ({split}) not found: nothing in {root / CIFAR10.base_folder}; "
                                    f"download=False. Get it with one of: {HOW_TO_GET_IT.format(root=root)}.") from None
        else:
            note = f"fallback: nothing in {root / CIFAR10.base_folder}, so torchvision downloaded it"
        try:
            ds = CIFAR10(str(root), train=train, download=True)
        except (OSError, RuntimeError) as err:  # URLError is an OSError
            raise FileNotFoundError(
                f"CIFAR-10 ({split}) not found: nothing in {root / CIFAR10.base_folder}; download failed: "
                f"{type(err).__name__}: {str(err).splitlines()[0][:200]}. Get it with one of: "
                f"{HOW_TO_GET_IT.format(root=root)}.") from None
    images = np.asarray(ds.data).transpose(0, 3, 1, 2)  # (N, 32, 32, 3) HWC -> (N, 3, 32, 32)
    x, y = from_uint8(images, ds.targets)
    return Dataset(x, y, tuple(ds.classes), "cifar10", split, str(root / CIFAR10.base_folder)), note


def _diagnose(root: Path) -> None:
    """Raise :class:`BrokenFileError` naming what is wrong when ``cifar-10-batches-py`` holds files that
    torchvision refuses (missing ones, ones failing the md5 checksum), or when the archive in ``root`` fails
    its checksum. Return quietly when neither is there (nothing on disk: a download may fill it)."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    folder, archive = root / CIFAR10.base_folder, root / CIFAR10.filename
    if not is_empty_or_absent(folder):
        expected = CIFAR10.train_list + CIFAR10.test_list + [[CIFAR10.meta["filename"], CIFAR10.meta["md5"]]]
        missing = [name for name, _ in expected if not (folder / name).is_file()]
        failing = [name for name, md5 in expected if name not in missing and not check_integrity(folder / name, md5)]
        problems = ([f"{', '.join(failing)} fail torchvision's md5 checksum (truncated or changed)"] if failing else [])
        problems += [f"{', '.join(missing)} missing"] if missing else []
        raise BrokenFileError(
            f"CIFAR-10 in {folder} is damaged: {'; '.join(problems)}. Nothing was downloaded over it: replace "
            f"those files from cifar-10-python.tar.gz, or move the folder away to let torchvision download "
            f"CIFAR-10 afresh.")
    if archive.is_file() and not check_integrity(archive, CIFAR10.tgz_md5):
        raise BrokenFileError(
            f"{archive} fails torchvision's md5 checksum (truncated or changed). Nothing was downloaded over it: "
            f"delete it to let torchvision download CIFAR-10 afresh, or replace it with an intact copy.")
