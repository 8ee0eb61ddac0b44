"""validate: every check refuses what it must, names the field, the value and what is allowed."""

import numpy as np
import pytest
import torch

from ldae_lite import code_version, validate


@pytest.mark.parametrize("value", ["16", 16.5, True, None, [16]])
def test_integer_refuses_non_integers(value):
    with pytest.raises(TypeError, match=r"steps must be an integer >= 1, got .*" + type(value).__name__):
        validate.integer("steps", value, low=1)


def test_integer_range_and_numpy():
    assert validate.integer("n", np.int64(3), low=1) == 3 and type(validate.integer("n", np.int64(3))) is int
    with pytest.raises(ValueError, match=r"n=0 is out of range: it must be an integer in \[1, 5\]"):
        validate.integer("n", 0, low=1, high=5)


@pytest.mark.parametrize("value", ["no", 0, 1, None, "True"])
def test_boolean_refuses_truthy_values(value):
    with pytest.raises(TypeError, match="class_cond must be True or False, got"):
        validate.boolean("class_cond", value)
    assert validate.boolean("x", np.bool_(True)) is True


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.1, 1.0])
def test_real_interval(value):
    with pytest.raises(ValueError, match=r"mask_ratio=.* must be a finite number in \[0, 1\)"):
        validate.real("mask_ratio", value, low=0, high=1, high_open=True)
    with pytest.raises(TypeError, match="lr must be a number, got '1e-3'"):
        validate.real("lr", "1e-3")


def test_one_of_tells_types_apart():
    assert validate.one_of("t", "eps", ("eps", "x0")) == "eps"
    with pytest.raises(ValueError, match=r"scale=True is not allowed; choose one of \(1, 2, 4\)"):
        validate.one_of("scale", True, (1, 2, 4))


@pytest.mark.parametrize("bad, match", [
    ([0, "1"], r"seeds\[1\] must be an integer in \[0, 4294967295\], got '1'"),
    ([0, 0, 1], r"seeds=\[0, 0, 1\] repeats \[0\]"),
    ([], "seeds is empty"),
    ("012", "seeds must be a sequence of integer seeds"),
    ([-1], r"seeds\[0\]=-1 is out of range"),
    ([2**32], r"seeds\[0\]=4294967296 is out of range"),
])
def test_seeds(bad, match):
    with pytest.raises((TypeError, ValueError), match=match):
        validate.seeds(bad)
    assert validate.seeds(range(3)) == (0, 1, 2)


def test_finite_says_where_and_how_many():
    x = torch.ones(10)
    x[2], x[5] = float("nan"), float("inf")
    with pytest.raises(ValueError, match=r"probe features \(train\): 2 of 10 values are not finite \(1 NaN, 1 inf\)"):
        validate.finite(x, "probe features (train)")
    assert validate.finite(torch.arange(3), "ints") is not None


def test_labels():
    with pytest.raises(ValueError, match=r"fashion-mnist train: 1 labels outside \[0, 10\) \(e.g. 10\)"):
        validate.labels(torch.tensor([0, 9, 10]), 10, "fashion-mnist train")
    with pytest.raises(TypeError, match="labels must be integers"):
        validate.labels(torch.tensor([0.0, 1.0]), 10, "y")


def test_code_hash_ignores_comments_and_docstrings_only(tmp_path):
    base = 'def f(x):\n    """Doc."""\n    return x + 1  # add one\n'
    same = '# a comment\ndef f(x):\n    """Another doc."""\n\n    return x + 1\n'
    other = 'def f(x):\n    """Doc."""\n    return x + 2\n'
    assert code_version.source_hash(base) == code_version.source_hash(same)
    assert code_version.source_hash(base) != code_version.source_hash(other)
    (tmp_path / "models.py").write_text(base)
    first = code_version.training_code_hash(("models",), tmp_path)
    (tmp_path / "models2").mkdir()
    (tmp_path / "models2" / "a.py").write_text(other)
    assert code_version.training_code_hash(("models", "models2"), tmp_path) != first


def test_training_path_modules_exist():
    names = {p.relative_to(code_version.PACKAGE).parts[0].removesuffix(".py") for p in code_version.files()}
    missing = {n.split(":")[0] for n in code_version.TRAINING_PATH} - names
    assert not missing, f"TRAINING_PATH names modules that do not exist: {missing}"
    for entry in code_version.TRAINING_PATH:  # a "module:function" entry names a function that exists
        if ":" in entry:
            module, function = entry.split(":")
            assert code_version.function_source(code_version.PACKAGE / f"{module}.py", function)
    assert {"builders", "tokenizers", "data", "device", "experiment:_train"} <= set(code_version.TRAINING_PATH)
    assert len(code_version.training_code_hash()) == 12


def test_a_function_entry_hashes_that_function_only(tmp_path):
    code_hash = code_version.training_code_hash.__wrapped__  # not the per-process cache: the files change here
    (tmp_path / "probe.py").write_text("def subset(n):\n    return n\n\n\ndef probe(x):\n    return x\n")
    first = code_hash(("probe:subset",), tmp_path)
    (tmp_path / "probe.py").write_text("def subset(n):\n    return n\n\n\ndef probe(x):\n    return x + 1\n")
    assert code_hash(("probe:subset",), tmp_path) == first
    (tmp_path / "probe.py").write_text("def subset(n):\n    return n - 1\n")
    assert code_hash(("probe:subset",), tmp_path) != first
    with pytest.raises(ValueError, match="no top-level function 'gone'"):
        code_hash(("probe:gone",), tmp_path)
