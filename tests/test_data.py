"""Dataset loading: the LDAE_DATASET switch, every place Fashion-MNIST is looked for, CIFAR-10 through
torchvision's own loader, digits, photos, and the messages a user sees: where the data came from (once per
split), a fallback (always), and what is missing or misspelled."""

import gzip
import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from ldae_lite import data

FMNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch, tmp_path):
    """Each test starts with an empty in-memory cache and no Debian data unless it provides some."""
    data.clear_cache()
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-here")
    monkeypatch.delenv("LDAE_DATA", raising=False)
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    yield
    data.clear_cache()


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: 0, 0, type 0x08, ndim, big-endian sizes, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fmnist(folder: Path, n_train: int = 6, n_test: int = 4, fill: int = 255, gz: bool = False) -> None:
    """Tiny Fashion-MNIST-format files: image i is constant `fill` with pixel (0, 0) = i; label i % 10."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = np.full((n, 28, 28), fill, dtype=np.uint8)
        images[:, 0, 0] = np.arange(n)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for stem, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
            payload = idx_bytes(array)
            if gz:
                with gzip.open(folder / (stem + ".gz"), "wb") as f:
                    f.write(payload)
            else:
                (folder / stem).write_bytes(payload)


def test_read_idx_offsets(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint32).reshape(2, 28, 28) % 256
    (tmp_path / "img").write_bytes(idx_bytes(images))
    assert len(idx_bytes(images)) - images.size == 16  # images start at byte 16
    assert len(idx_bytes(np.zeros(3, np.uint8))) - 3 == 8  # labels at byte 8
    np.testing.assert_array_equal(data.read_idx(tmp_path / "img"), images)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="unsigned-byte IDX"):
        data.read_idx(tmp_path / "bad")


def test_debian_path(monkeypatch, tmp_path, capsys):
    debian = tmp_path / "debian"
    write_fmnist(debian, gz=True)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", debian)
    train = data.load("fashion-mnist", "train", root=tmp_path / "empty", download=False)
    assert train.images.shape == (6, 1, 32, 32) and train.images.dtype == torch.float32
    assert train.labels.dtype == torch.int64 and train.labels.tolist() == [0, 1, 2, 3, 4, 5]
    assert train.source == str(debian) and train.split == "train" and train.classes == data.CLASSES
    # 28x28 padded by 2 on every side with the background value -1; 255 -> 1, 0 -> -1.
    assert (train.images[:, :, :2] == -1).all() and (train.images[:, :, :, -2:] == -1).all()
    assert (train.images[:, :, 2:30, 3:30] == 1).all()
    assert train.images[0, 0, 2, 2] == -1 and train.images[5, 0, 2, 2] == pytest.approx(5 / 127.5 - 1)
    # The Debian package is one of the places looked in, not a fallback: the line is information only.
    assert capsys.readouterr().out == f"Fashion-MNIST train: 6 images (1x32x32), read from {debian}\n"
    assert len(data.load("fashion-mnist", "test", root=tmp_path / "empty", download=False)) == 4


def test_raw_cache_path_wins_over_debian(monkeypatch, tmp_path):
    write_fmnist(tmp_path / "FashionMNIST" / "raw", n_train=3, fill=0)
    write_fmnist(tmp_path / "debian", n_train=7, gz=True)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    train = data.load("fashion-mnist", root=tmp_path, download=False)
    assert len(train) == 3 and train.source == str(tmp_path / "FashionMNIST" / "raw")
    assert (train.images[:, :, 2:30, 3:30] == -1).all()


def test_root_from_environment(monkeypatch, tmp_path):
    write_fmnist(tmp_path / "FashionMNIST" / "raw")
    monkeypatch.setenv("LDAE_DATA", str(tmp_path))
    assert data.default_root() == tmp_path
    assert data.load("fashion-mnist", split="test", download=False).source == str(tmp_path / "FashionMNIST" / "raw")


def test_in_memory_cache_and_one_line_per_split(tmp_path, capsys):
    """Every training run loads its data again: the line saying where it came from is printed once per
    dataset and split in a process, not once per load."""
    write_fmnist(tmp_path / "FashionMNIST" / "raw")
    first = data.load("fashion-mnist", root=tmp_path, download=False)
    second = data.load("fashion-mnist", root=tmp_path, download=False)
    assert second is first
    data.load("fashion-mnist", "test", root=tmp_path, download=False)
    data.load("fashion-mnist", "test", root=tmp_path, download=False)
    raw = tmp_path / "FashionMNIST" / "raw"
    assert capsys.readouterr().out.splitlines() == [f"Fashion-MNIST train: 6 images (1x32x32), read from {raw}",
                                                    f"Fashion-MNIST test: 4 images (1x32x32), read from {raw}"]
    data.clear_cache()  # read from disk again: said again
    data.load("fashion-mnist", root=tmp_path, download=False)
    assert capsys.readouterr().out.count("\n") == 1


def test_quiet_load_leaves_the_line_for_the_first_verbose_one(tmp_path, capsys):
    write_fmnist(tmp_path / "FashionMNIST" / "raw")
    data.load("fashion-mnist", root=tmp_path, download=False, verbose=False)
    assert capsys.readouterr().out == ""
    data.load("fashion-mnist", root=tmp_path, download=False)
    assert "Fashion-MNIST train: 6 images" in capsys.readouterr().out


def test_download_fallback_is_always_printed(monkeypatch, tmp_path, capsys):
    """Nothing on disk: torchvision's download is the fallback, and it is said every time it happens."""
    import torchvision.datasets

    class FakeDownload:  # stands in for torchvision's FashionMNIST(root, train, download=True)
        def __init__(self, root, train, download):
            assert download
            n = 6 if train else 4
            self.data = torch.zeros(n, 28, 28, dtype=torch.uint8)
            self.targets = torch.arange(n) % 10

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeDownload)
    for _ in range(2):
        data.clear_cache()
        assert len(data.load("fashion-mnist", root=tmp_path)) == 6
        assert len(data.load("fashion-mnist", root=tmp_path)) == 6  # from memory: nothing new to say
        out = capsys.readouterr().out.splitlines()
        assert len(out) == 1 and out[0].startswith("Fashion-MNIST train: 6 images (1x32x32), read from ")
        assert "fallback:" in out[0] and "torchvision downloaded it" in out[0] and "no-debian-here" in out[0]


def test_default_dataset_is_fashion_mnist_m_and_follows_the_switch(monkeypatch):
    assert data.DEFAULT == "fashion-mnist-m" and data.default_dataset() == "fashion-mnist-m"
    monkeypatch.setenv(data.ENV_VAR, " Digits ")
    assert data.default_dataset() == "digits" and data.dataset_name(None) == "digits"
    assert data.load(split="test").name == "digits"  # load() without a name follows the switch
    assert data.dataset_name("FASHION-MNIST") == "fashion-mnist"  # an explicit name wins over the switch
    monkeypatch.setenv(data.ENV_VAR, "")
    assert data.default_dataset() == "fashion-mnist-m"  # empty means unset, like LDAE_BUDGET


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar-10"])
def test_unknown_dataset_in_the_switch(monkeypatch, name):
    monkeypatch.setenv(data.ENV_VAR, name)
    with pytest.raises(ValueError) as err:
        data.default_dataset()
    message = str(err.value)
    assert repr(name) in message and "$LDAE_DATASET" in message
    assert all(allowed in message for allowed in data.DATASETS)
    with pytest.raises(ValueError, match="LDAE_DATASET"):
        data.load(split="test")


def test_command_line_names_the_default(monkeypatch, capsys):
    from ldae_lite.__main__ import main

    with pytest.raises(SystemExit):
        main(["trajectory", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--dataset" in help_text and "$LDAE_DATASET or fashion-mnist-m" in help_text
    monkeypatch.setenv(data.ENV_VAR, "mnist")
    with pytest.raises(SystemExit):
        main(["pixels", "--budget", "smoke"])
    assert "--dataset: unknown dataset 'mnist' (from $LDAE_DATASET)" in capsys.readouterr().err


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        data.load("fashion-mnist", "train", root=tmp_path, download=False)
    message = str(err.value)
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert str(tmp_path / "FashionMNIST" / "raw") in message and "download" in message


@pytest.mark.parametrize("name", ["mnist", "cifar100", ""])
def test_unknown_dataset(name):
    with pytest.raises(ValueError, match=f"unknown dataset {name!r}; choose one of .*fashion-mnist.*cifar10.*digits"):
        data.load(name)


@pytest.mark.parametrize("split", ["val", "training", None])
def test_unknown_split(split):
    with pytest.raises(ValueError, match="split"):
        data.load("digits", split)


def write_cifar(root: Path, per_batch: int = 2) -> dict[str, str]:
    """CIFAR-10's python layout with tiny batches; returns {file name: md5} for the integrity check."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for b, name in enumerate(names):
        rows = np.zeros((per_batch, 3072), dtype=np.uint8)  # each row: 1024 R, then G, then B, row-major
        rows[:, 0] = 255  # red channel, pixel (0, 0)
        rows[:, 2048 + 1023] = 10 * b  # blue channel, pixel (31, 31)
        entry = {"data": rows, "labels": [(b + j) % 10 for j in range(per_batch)], "batch_label": name}
        (folder / name).write_bytes(pickle.dumps(entry))
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer",
                            "dog", "frog", "horse", "ship", "truck"]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def point_md5s_at(monkeypatch, md5: dict[str, str]) -> None:
    """torchvision checks each CIFAR-10 file's md5 against the real dataset's: point its table at ours."""
    from torchvision.datasets import CIFAR10

    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5["batches.meta"]})


def test_cifar10_through_torchvision_loader(monkeypatch, tmp_path):
    # point torchvision's md5 table at our tiny files, so the real loader code (integrity check,
    # unpickling, HWC layout, meta) runs unchanged.
    point_md5s_at(monkeypatch, write_cifar(tmp_path))
    train = data.load("cifar10", "train", root=tmp_path, download=False)
    assert train.images.shape == (10, 3, 32, 32) and train.labels.dtype == torch.int64
    assert train.classes[0] == "airplane" and len(train.classes) == 10
    assert (train.images[:, 0, 0, 0] == 1).all() and (train.images[:, 1:, 0, 0] == -1).all()
    assert train.images[2, 2, 31, 31] == pytest.approx(10 / 127.5 - 1)  # batch 2's blue corner
    assert train.labels.tolist()[:4] == [0, 1, 1, 2]
    test = data.load("cifar10", "test", root=tmp_path, download=False)
    assert len(test) == 2 and test.images[0, 2, 31, 31] == pytest.approx(50 / 127.5 - 1)


def test_cifar10_missing_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="download") as err:
        data.load("cifar10", root=tmp_path, download=False)
    assert "cifar-10-batches-py" in str(err.value)


def test_digits():
    train, test = data.load("digits", "train"), data.load("digits", "test")
    assert train.images.shape == (1500, 1, 32, 32) and len(test) == 297
    assert train.images.min() == -1 and train.images.max() == 1
    # nearest upsampling x4: every 4x4 block is constant
    blocks = train.images[:5].reshape(5, 1, 8, 4, 8, 4)
    assert (blocks == blocks[:, :, :, :1, :, :1]).all()
    assert train.classes == tuple("0123456789")


def test_sample_photos():
    photos = data.sample_photos()
    assert len(photos) == 2
    for p in photos:
        assert p.ndim == 3 and p.shape[2] == 3 and p.dtype == np.float32
        assert -1 <= p.min() < p.max() <= 1
    photos[0][:] = 0  # callers get copies
    assert data.sample_photos()[0].min() < 0


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Fashion-MNIST not installed (sudo apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", Path("/usr/share/datasets/fashion-mnist"))
    test = data.load("fashion-mnist", "test", root=tmp_path, download=False)
    assert test.images.shape == (10000, 1, 32, 32)
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert (test.images[:, :, :2] == -1).all() and test.images.max() == 1


def test_composite_is_mnist_m_blend():
    """|crop - garment|: a black garment pixel keeps the photo, a white one inverts it; seeded crops."""
    photo = np.arange(40 * 50 * 3, dtype=np.int64).reshape(40, 50, 3) % 251
    photos = [photo.astype(np.uint8)]
    garments = np.zeros((5, 32, 32), dtype=np.uint8)
    garments[:, 10:20, 10:20] = 255
    out = data.composite(garments, photos, seed=3)
    assert out.shape == (5, 3, 32, 32) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, data.composite(garments, photos, seed=3))
    assert not np.array_equal(out, data.composite(garments, photos, seed=4))
    for img in out.transpose(0, 2, 3, 1).astype(np.int64):  # (32, 32, 3) each
        # the background is a 32x32 window of the photo: find it by its top-left pixel
        hits = [(r, c) for r in range(9) for c in range(19) if np.array_equal(photo[r:r + 10, c:c + 32], img[:10])]
        assert hits, "background is not a crop of the photo"
        r, c = hits[0]
        np.testing.assert_array_equal(img[10:20, 10:20], 255 - photo[r + 10:r + 20, c + 10:c + 20])


def test_composite_photos_are_bundled():
    photos = data.composite_photos()
    assert len(photos) == len(data.COMPOSITE_PHOTOS) + 2
    assert all(p.ndim == 3 and p.shape[2] == 3 and p.dtype == np.uint8 and min(p.shape[:2]) >= 32 for p in photos)


def test_fashion_mnist_m_from_fashion_mnist_files(monkeypatch, tmp_path):
    write_fmnist(tmp_path / "FashionMNIST" / "raw", n_train=6, n_test=4, fill=0)
    train = data.load("fashion-mnist-m", "train", root=tmp_path, download=False)
    test = data.load("fashion-mnist-m", "test", root=tmp_path, download=False)
    assert train.images.shape == (6, 3, 32, 32) and len(test) == 4 and train.classes == data.CLASSES
    assert train.labels.tolist() == [0, 1, 2, 3, 4, 5] and "bundled photos" in train.source
    assert data.describe(train) == (f"Fashion-MNIST-M train: 6 images (3x32x32), garments read from "
                                    f"{tmp_path / 'FashionMNIST' / 'raw'}, blended into crops of 15 bundled photos")
    assert -1 <= train.images.min() < train.images.max() <= 1
    assert train.images.std(dim=(1, 2, 3)).min() > 0  # a photo behind every (black) garment, not a flat image


# ------------------------------------------------------------------------- broken files name themselves

@pytest.mark.parametrize("damage, message", [
    ("truncated gz", r"train-images-idx3-ubyte\.gz is truncated: Compressed file ended"),
    ("changed gz", r"train-images-idx3-ubyte\.gz is a corrupted gzip file \(CRC check failed"),
    ("not gz", r"train-images-idx3-ubyte\.gz is a corrupted gzip file \(Not a gzipped file"),
    ("short header", r"train-images-idx3-ubyte is truncated: its header needs 16 bytes, the file holds 10"),
    ("short data", r"images-idx3-ubyte: header says \(6, 28, 28\) \(4704 bytes of data\) but the file holds 4000"),
])
def test_a_broken_idx_file_names_itself(tmp_path, damage, message):
    raw = tmp_path / "FashionMNIST" / "raw"
    write_fmnist(raw, gz=damage.endswith("gz"))
    path = raw / ("train-images-idx3-ubyte" + (".gz" if damage.endswith("gz") else ""))
    blob = path.read_bytes()
    path.write_bytes({"truncated gz": blob[:len(blob) // 2], "changed gz": blob[:-8] + b"\x00" * 4 + blob[-4:],
                      "not gz": b"plain bytes", "short header": blob[:10], "short data": blob[:16 + 4000]}[damage])
    with pytest.raises(data.BrokenFileError, match=message):
        data.read_idx(path)
    with pytest.raises(data.BrokenFileError, match=str(path)):  # load says the same, and downloads nothing
        data.load("fashion-mnist", "train", root=tmp_path)
    assert len(data.load("fashion-mnist", "test", root=tmp_path, download=False)) == 4  # the other split is fine


def test_labels_out_of_range_name_the_files(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    write_fmnist(raw)
    (raw / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([0, 1, 2, 3, 4, 12], dtype=np.uint8)))
    with pytest.raises(data.BrokenFileError, match=r"train-labels-idx1-ubyte hold labels up to 12; .*\[0, 10\)"):
        data.load("fashion-mnist", root=tmp_path, download=False)


def test_data_command_reports_broken_sources_and_goes_on(monkeypatch, tmp_path, capsys):
    import functools

    from ldae_lite.__main__ import main

    write_fmnist(tmp_path / "FashionMNIST" / "raw", gz=True)
    gz = tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:40])
    monkeypatch.setenv("LDAE_DATA", str(tmp_path))
    monkeypatch.setattr(data, "load", functools.partial(data.load, download=False))  # no network in tests
    assert main(["data"]) == 1  # a required dataset is broken
    out = capsys.readouterr().out
    assert f"fashion-mnist: not available -- {gz} is truncated" in out
    assert f"fashion-mnist-m: not available -- {gz} is truncated" in out
    assert "cifar10: not available (optional)" in out and "digits: 1500 training images" in out  # it went on


def test_no_download_over_a_partial_fashion_mnist_folder(monkeypatch, tmp_path):
    import torchvision.datasets

    raw = tmp_path / "FashionMNIST" / "raw"
    write_fmnist(raw)
    for stem in FMNIST_FILES[:2]:  # the training files are missing; the test files are the user's
        (raw / stem).unlink()

    def no_download(*args, **kwargs):
        raise AssertionError("torchvision was asked to download over the user's files")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", no_download)
    with pytest.raises(FileNotFoundError, match=r"no download: .*raw already holds files \(t10k-images-idx3-ubyte"):
        data.load("fashion-mnist", "train", root=tmp_path)
    assert (raw / "t10k-images-idx3-ubyte").is_file() and len(data.load("fashion-mnist", "test", root=tmp_path)) == 4


@pytest.fixture
def tiny_cifar(monkeypatch, tmp_path):
    """CIFAR-10's layout with tiny batches, torchvision's md5 table pointed at them, and its download
    replaced by one that records the call and fails (no network in tests)."""
    from torchvision.datasets import CIFAR10

    point_md5s_at(monkeypatch, write_cifar(tmp_path))
    downloads = []

    def download(self):
        downloads.append(self.root)
        raise OSError("network unreachable")

    monkeypatch.setattr(CIFAR10, "download", download)
    return tmp_path / "cifar-10-batches-py", downloads


def test_cifar10_failing_the_checksum_says_so_and_downloads_nothing(tiny_cifar):
    folder, downloads = tiny_cifar
    (folder / "data_batch_3").write_bytes((folder / "data_batch_3").read_bytes()[:-10])  # truncated
    (folder / "test_batch").unlink()
    with pytest.raises(data.BrokenFileError) as err:
        data.load("cifar10", "train", root=folder.parent, download=True)
    message = str(err.value)
    assert f"CIFAR-10 in {folder} is damaged: data_batch_3 fail torchvision's md5 checksum" in message
    assert "test_batch missing" in message and "Nothing was downloaded over it" in message
    assert downloads == [] and (folder / "data_batch_3").is_file()


def test_cifar10_archive_extracted_when_intact_refused_when_not(monkeypatch, tmp_path, capsys):
    """torchvision's own download() runs here: with an intact archive in place it fetches nothing."""
    import shutil
    import tarfile

    from torchvision.datasets import CIFAR10

    point_md5s_at(monkeypatch, write_cifar(tmp_path))
    folder = tmp_path / CIFAR10.base_folder
    archive = folder.parent / CIFAR10.filename
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    shutil.rmtree(folder)
    monkeypatch.setattr(CIFAR10, "tgz_md5", hashlib.md5(archive.read_bytes()).hexdigest())
    train = data.load("cifar10", "train", root=folder.parent, download=False)
    assert len(train) == 10 and f"extracted from {archive}" in capsys.readouterr().out
    shutil.rmtree(folder)
    archive.write_bytes(archive.read_bytes()[:100])
    data.clear_cache()
    with pytest.raises(data.BrokenFileError, match=f"{archive} fails torchvision's md5 checksum"):
        data.load("cifar10", "train", root=folder.parent)
    assert archive.stat().st_size == 100 and not folder.exists()  # nothing downloaded over it


def test_cifar10_downloads_only_into_an_empty_folder(tiny_cifar):
    import shutil

    folder, downloads = tiny_cifar
    shutil.rmtree(folder)
    folder.mkdir()  # empty: a download may fill it
    with pytest.raises(FileNotFoundError, match="download failed: OSError: network unreachable"):
        data.load("cifar10", "train", root=folder.parent)
    assert downloads == [str(folder.parent)]
    with pytest.raises(FileNotFoundError, match="not found: nothing in .*download=False"):
        data.load("cifar10", "train", root=folder.parent, download=False)
    assert len(downloads) == 1
