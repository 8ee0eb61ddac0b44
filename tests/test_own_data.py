"""Datasets of your own: from tensors and from a folder of image files, usable wherever a dataset name is
(load, the caches, experiment.run, the raw-pixel probe, the command line, the trajectory's worker
processes), refused with a clear error when they cannot be used; and probe_images, a trained run's
encoder probed on images you give."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny import TINY
from PIL import Image

from ldae_lite import builders, cache, data, experiment, recipes
from ldae_lite.data import own
from ldae_lite.data.folder import _read_from
from ldae_lite.own_images import probe_images

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch, tmp_path):
    """Each test starts with nothing registered, its own runs/ and its own copy of the shared-files variable."""
    monkeypatch.setenv("LDAE_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv(own.SHARE_ENV_VAR, "{}")
    monkeypatch.setattr(own, "_registry", {})
    monkeypatch.setattr(own, "_written", {})
    _read_from.clear()
    data.clear_cache()
    yield
    for path in own._written.values():
        path.unlink(missing_ok=True)
    for name in set(data.TITLES) - set(data.DATASETS):
        del data.TITLES[name]
    _read_from.clear()
    data.clear_cache()


def tiny(n=12, k=3, channels=1, seed=0):
    """n uint8 images (n, channels, 32, 32), labels i % k."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, 32, 32), generator=gen, dtype=torch.uint8), torch.arange(n) % k


def write_folder(root: Path, classes=("cat", "dog"), per_class=5, size=(40, 48), mode="RGB") -> Path:
    """root/<class>/<i>.png, each image random; sizes (H, W) not square, to be resized and cropped."""
    rng = np.random.default_rng(0)
    for cls in classes:
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = size + ((3,) if mode == "RGB" else ())
            Image.fromarray((rng.random(shape) * 255).astype(np.uint8), mode).save(root / cls / f"{i:02d}.png")
    return root


# ------------------------------------------------------------------------------------------ from tensors

def test_from_tensors_registers_a_dataset_load_serves(capsys):
    x, y = tiny(12)
    xt, yt = tiny(6, seed=1)
    assert data.from_tensors("mine", x, y, xt, yt, classes=("a", "b", "c")) == "mine"
    train, test = data.load("mine", "train"), data.load("Mine", "test")
    assert train.images.shape == (12, 1, 32, 32) and train.images.dtype == torch.float32 and len(test) == 6
    assert torch.equal(train.images, x.float() / 127.5 - 1) and train.labels.tolist() == y.tolist()
    assert train.classes == ("a", "b", "c") and train.name == "mine" and train.split == "train"
    assert capsys.readouterr().out.splitlines()[0] == "mine train: 12 images (1x32x32), from tensors given in memory"
    assert data.dataset_name("mine") == "mine" and "mine" in data.registered() and data.num_classes("mine") == 3
    assert data.TITLES["mine"] == "mine"


def test_without_test_images_a_fixed_share_of_each_class_is_held_out():
    x, y = tiny(30, k=3)
    data.from_tensors("held", x.float() / 127.5 - 1, y)
    train, test = data.load("held", "train"), data.load("held", "test")
    assert len(train) == 24 and len(test) == 6 and torch.bincount(test.labels).tolist() == [2, 2, 2]
    assert "20% of each class held out as test (seed 0)" in train.source
    again_train, again_test = data.split_indices(y, 0.2, 0)
    assert torch.equal(again_test, data.split_indices(y, 0.2, 0)[1])  # the same split every time
    assert sorted(again_train.tolist() + again_test.tolist()) == list(range(30))
    assert not torch.equal(again_test, data.split_indices(y, 0.2, 1)[1])  # another seed, another split


def test_split_keeps_a_training_image_of_every_class_and_refuses_too_few():
    train, test = data.split_indices(torch.tensor([0, 1, 1, 1, 1, 1]), 0.5)
    assert 0 in train.tolist() and len(test) == 2  # the lone class-0 image stays in train
    with pytest.raises(ValueError, match="too few to hold out"):
        data.split_indices(torch.tensor([0, 1]), 0.2)
    with pytest.raises(ValueError, match="test_fraction"):
        data.split_indices(torch.tensor([0, 1]), 1.0)


def test_images_are_resized_cropped_and_converted():
    wide = torch.zeros(4, 3, 40, 64)  # shorter side 40 -> 32, then the centre 32 x 32
    wide[..., 24:40] = 1.0  # a bright band in the middle columns survives the crop
    x = data.as_images(wide, "here")
    assert x.shape == (4, 3, 32, 32) and x[..., 16].min() == pytest.approx(1.0) and x[..., 0].max() == 0.0
    grey = data.as_images(torch.full((2, 32, 32), 255, dtype=torch.uint8), "here", channels=3)
    assert grey.shape == (2, 3, 32, 32) and (grey == 1).all()  # (N, H, W) is grey; repeated to RGB
    rgb = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1).expand(1, 3, 32, 32)
    assert data.as_images(rgb, "here", channels=1)[0, 0, 0, 0] == pytest.approx(0.299 - 0.587 - 0.114)


def test_same_name_other_images_never_share_cached_runs(capsys):
    x, y = tiny(12)
    data.from_tensors("mine", x, y)
    first = (data.identity("mine"), cache.run_folder(recipes.LDAE, TINY, "mine"), cache.baseline_path("mine", TINY, 0),
             cache.tokenizer_path(recipes.LDAE, TINY, "mine", 0), cache.cnn_path(TINY, "mine"))
    data.from_tensors("mine", x, y)  # the same images again: nothing changes, nothing is said
    assert data.identity("mine") == first[0] and capsys.readouterr().out == ""
    x[0, 0, 0, 0] ^= 1  # one pixel differs
    data.from_tensors("mine", x, y)
    assert "registered again with other images" in capsys.readouterr().out
    second = (data.identity("mine"), cache.run_folder(recipes.LDAE, TINY, "mine"), cache.baseline_path("mine", TINY, 0),
              cache.tokenizer_path(recipes.LDAE, TINY, "mine", 0), cache.cnn_path(TINY, "mine"))
    assert all(a != b for a, b in zip(first, second))
    assert first[0].startswith("mine-") and first[1].name.startswith(first[0] + "-tiny-")
    # built-in datasets keep their plain names (and so every key they had)
    assert data.identity("digits") == "digits" and cache.run_folder(recipes.LDAE, TINY, "digits").name.startswith(
        "digits-tiny-")


@pytest.mark.parametrize("bad, message", [
    (dict(train_images=torch.full((4, 1, 32, 32), float("nan"))),
     r"dataset 'bad', train images: 4096 of 4096 values are not finite \(4096 NaN, 0 inf\)"),
    (dict(test_images=torch.zeros(4, 1, 32, 32).index_put_((torch.tensor([1]),), torch.tensor(float("inf")))),
     r"dataset 'bad', test images: 1024 of 4096 values are not finite \(0 NaN, 1024 inf\)"),
    (dict(train_labels=torch.tensor([0, 1, 2, 3]), classes=("a", "b", "c")),
     r"dataset 'bad', train labels: 1 labels outside \[0, 3\) \(e.g. 3\)"),
    (dict(train_labels=torch.tensor([0, 2, 0, 2])), r"classes \['1'\] have no training image"),
    (dict(train_labels=torch.tensor([0, 1, 0])), r"dataset 'bad', train split: 4 images but 3 labels"),
    (dict(test_labels=None), "give both test_images and test_labels"),
    (dict(train_images=torch.zeros(4, 32, 32, 3)),
     r"must be \(N, C, H, W\) with C = 1 .* \(channels last\? use images.permute\(0, 3, 1, 2\)\)"),
    (dict(train_images=torch.full((4, 1, 32, 32), 2.0)), r"values span \[2, 2\]; images must be uint8"),
    (dict(train_images=torch.zeros(4, 1, 32, 32, dtype=torch.int32)), "must be uint8 .* got dtype torch.int32"),
    (dict(train_labels=torch.tensor([0.0, 1.0, 0.0, 1.0])), "labels must be integers"),
    (dict(train_labels=torch.tensor([-1, 1, 0, 1])), r"labels outside \[0, 2\) \(e.g. -1\)"),
])
def test_what_cannot_be_used_is_refused_naming_dataset_and_split(bad, message):
    args = dict(train_images=torch.zeros(4, 1, 32, 32), train_labels=torch.tensor([0, 1, 0, 1]),
                test_images=torch.zeros(2, 1, 32, 32), test_labels=torch.tensor([0, 1]))
    args.update(bad)
    with pytest.raises((ValueError, TypeError), match=message):
        data.from_tensors("bad", **args)
    assert "bad" not in data.registered()


@pytest.mark.parametrize("name", ["digits", "My Photos", "", "a/b", 3])
def test_a_name_must_be_new_and_fit_in_a_file_name(name):
    with pytest.raises(ValueError, match="dataset name"):
        data.from_tensors(name, *tiny(4, k=2))


def test_unknown_names_list_the_registered_ones_and_the_folder_form():
    data.from_tensors("mine", *tiny(12))
    with pytest.raises(ValueError, match=r"unknown dataset 'yours'; choose one of .*registered in this process "
                                         r"\('mine',\), or give a folder .*with a '/'"):
        data.load("yours")


# ---------------------------------------------------------------------------------------------- folders

def test_from_folder_one_folder_split_by_class(tmp_path):
    root = write_folder(tmp_path / "My Pets", per_class=5)
    (root / "cat" / "notes.txt").write_text("not an image")  # ignored, as ImageFolder does
    name = data.from_folder(root)
    assert name == "my-pets"
    train, test = data.load(name, "train"), data.load(name, "test")
    assert train.images.shape == (8, 3, 32, 32) and len(test) == 2 and train.classes == ("cat", "dog")
    assert torch.bincount(test.labels).tolist() == [1, 1] and -1 <= train.images.min() < train.images.max() <= 1
    assert train.source.startswith(f"folder {root}")


def test_from_folder_with_train_and_test_and_grey_images(tmp_path):
    root = tmp_path / "scans"
    write_folder(root / "train", ("a", "b", "c"), per_class=2, size=(32, 32), mode="L")
    write_folder(root / "test", ("a", "c"), per_class=1, size=(32, 32), mode="L")  # a test split may lack a class
    name = data.from_folder(root)
    train, test = data.load(name, "train"), data.load(name, "test")
    assert train.images.shape == (6, 1, 32, 32) and train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert test.labels.tolist() == [0, 2] and train.source == f"folder {root} (train/ and test/)"
    pixels = np.asarray(Image.open(root / "train" / "b" / "01.png"), dtype=np.float32) / 127.5 - 1
    assert torch.allclose(train.images[3, 0], torch.from_numpy(pixels))  # 32 x 32 already: read as it is
    assert data.load(data.from_folder(root, name="scans-rgb", channels=3), "train").images.shape[1] == 3


def test_a_folder_path_works_wherever_a_dataset_name_does(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "cifar10", per_class=6)
    name = data.dataset_name(str(root))
    assert name == "cifar10-folder"  # a built-in dataset's name gets a suffix
    assert data.load(str(root)).name == name and len(data.load(str(root), "test")) == 2
    assert data.dataset_name(str(root) + "/") == name and len(_read_from) == 1  # read once, then reused
    monkeypatch.setenv(data.ENV_VAR, str(root))
    assert data.default_dataset() == name
    baseline = experiment.pixel_baseline(str(root), TINY, progress=False)
    assert baseline["n_train"] == 10 and baseline["n_test"] == 2
    assert cache.baseline_path(name, TINY, 0).name.startswith(data.identity(name) + "-")


def test_command_line_takes_a_folder(tmp_path, capsys):
    from ldae_lite.__main__ import main

    root = write_folder(tmp_path / "pets", per_class=6)
    assert main(["pixels", "--budget", "smoke", "--dataset", str(root)]) == 0
    assert "raw pixels on pets (10/2 images)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["pixels", "--budget", "smoke", "--dataset", "mnist"])
    assert "--dataset: unknown dataset 'mnist'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pixels", "--budget", "smoke", "--dataset", str(tmp_path / "nowhere")])
    assert f"no folder {tmp_path / 'nowhere'}" in capsys.readouterr().err


@pytest.mark.parametrize("layout, message", [
    ("no classes", "has no class folders; the layout is"),
    ("empty class", r"class folder .*dog holds no images; every class needs at least one file ending in \.jpg"),
    ("train only", "has a train/ folder but no test/"),
    ("unknown test class", r"test classes \['eel'\] in .*test have no folder in .*train"),
    ("broken image", r"dog.01\.png cannot be read as an image \(UnidentifiedImageError"),
    ("truncated image", r"cat.00\.png cannot be read as an image \(OSError: .*truncated"),
])
def test_a_folder_that_cannot_be_used_says_why(tmp_path, layout, message):
    root = tmp_path / "set"
    if layout == "no classes":
        root.mkdir()
        Image.new("RGB", (32, 32)).save(root / "loose.png")
    elif layout == "empty class":
        write_folder(root, ("cat",))
        (root / "dog").mkdir()
    elif layout == "train only":
        write_folder(root / "train")
    elif layout == "unknown test class":
        write_folder(root / "train")
        write_folder(root / "test", ("eel",))
    else:
        write_folder(root)
        if layout == "broken image":
            (root / "dog" / "01.png").write_bytes(b"not a png at all")
        else:
            path = root / "cat" / "00.png"
            path.write_bytes(path.read_bytes()[:200])
    with pytest.raises((ValueError, OSError), match=message) as err:
        data.from_folder(root)
    assert isinstance(err.value, data.BrokenFileError) == layout.endswith("image")


# ---------------------------------------------------------------------------- the processes it starts

def test_a_registration_reaches_the_processes_this_one_starts(tmp_path):
    """The trajectory's workers are fresh processes: they find the dataset through the shared file, and
    the file a process writes goes when that process exits."""
    x, y = tiny(10)
    data.from_tensors("shared", x, y)
    shared = own._written["shared"]
    code = ("from ldae_lite import data; d = data.load('shared', 'train', verbose=False); "
            "print(len(d), data.identity('shared'), data.num_classes('shared')); "
            "data.from_tensors('gone', d.images, d.labels); print(data.own._written['gone'])")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    seen, written = out.stdout.splitlines()
    assert seen.split() == ["7", data.identity("shared"), "3"]  # 10 images, 1 of each class held out
    assert shared.is_file()  # the child read it and left it to the process that wrote it
    assert not Path(written).exists()  # the child's own file went with it


# ------------------------------------------------------------------------- runs on your own images

def test_experiment_runs_on_a_registered_dataset(one_thread):
    digits = data.load("digits", "train", verbose=False)
    data.from_tensors("twelve", digits.images[:240], torch.arange(240) % 12)
    result = experiment.run(recipes.LDAE, TINY, "twelve", progress=False)
    assert 0 <= result.probe_accuracy <= 100 and result.dataset == "twelve"
    assert experiment.run(recipes.LDAE, TINY, "twelve", progress=False).cached
    pca = experiment.get_tokenizer(recipes.LDAE, TINY, "twelve", 0, "cpu", progress=False)
    _, model = builders.build(recipes.STEPS["dit_baseline"].recipe, pca, TINY, "twelve")
    assert model.num_classes == 12  # a class-conditional DiT gets a label row per class of its dataset
    assert builders.build(recipes.STEPS["dit_baseline"].recipe, pca, TINY, "digits")[1].num_classes == 10


def test_probe_images_on_digits(one_thread, capsys):
    test = data.load("digits", "test", verbose=False)
    images, labels = test.images[:150], test.labels[:150]
    out = probe_images("predict_image", images, labels, budget=TINY, dataset="digits")
    assert out["step"] == "predict_image" and out["dataset"] == "digits" and out["budget"] == "tiny"
    assert out["n_train"] + out["n_test"] == 150 and out["num_classes"] == 10 and out["t"] == experiment.PROBE_T
    assert 0 <= out["linear"] <= 100 and 0 <= out["knn"] <= 100 and 0 <= out["raw_pixels"]["linear"] <= 100
    assert out["run"] == cache.run_folder(recipes.STEPS["predict_image"].recipe, TINY, "digits").name
    printed = capsys.readouterr().out
    assert f"probed on your {out['n_train']}/{out['n_test']} images: linear probe {out['linear']:.2f}%" in printed
    again = probe_images(recipes.STEPS["predict_image"], images, labels, budget=TINY, dataset="digits", progress=False)
    assert (again["linear"], again["knn"]) == (out["linear"], out["knn"])  # the cached run, the same numbers
    # RGB uint8 images of another size become what the run knows (grey 32 x 32); a test split can be given
    rgb = ((images.repeat(1, 3, 1, 1) + 1) * 127.5).round().to(torch.uint8)
    rgb = torch.nn.functional.interpolate(rgb.float(), size=48).round().to(torch.uint8)
    given = probe_images(recipes.LDAE, rgb[:100], labels[:100], test_images=rgb[100:], test_labels=labels[100:],
                         budget=TINY, dataset="digits", pixels=False, progress=False)
    assert given["n_train"] == 100 and given["n_test"] == 50 and given["raw_pixels"] is None
    assert given["step"] == experiment.recipe_label(recipes.LDAE)


@pytest.mark.parametrize("args, message", [
    (dict(step_or_recipe="l_dae"), "trajectory step='l_dae' is not allowed; choose one of"),
    (dict(step_or_recipe=3), "step_or_recipe must be a trajectory step's key"),
    (dict(labels=torch.zeros(20, dtype=torch.long)), "every label is 0; a probe needs images of at least two"),
    (dict(images=torch.full((20, 1, 32, 32), float("nan"))), r"probe_images: images: 20480 of 20480 values"),
    (dict(test_images=torch.zeros(4, 1, 32, 32)), "give both test_images and test_labels"),
])
def test_probe_images_refuses_what_it_cannot_probe(args, message):
    call = dict(step_or_recipe="predict_image", images=torch.zeros(20, 1, 32, 32), labels=torch.arange(20) % 2)
    call.update(args)
    with pytest.raises((ValueError, TypeError), match=message):
        probe_images(call.pop("step_or_recipe"), call.pop("images"), call.pop("labels"), budget=TINY,
                     dataset="digits", **call)
