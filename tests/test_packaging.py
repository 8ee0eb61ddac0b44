"""environment.yml (conda users) must install exactly what pyproject.toml declares."""

import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
EXTRAS_IN_ENVIRONMENT = ("lab", "dev")  # "bench" (timm) is for `make bench` only


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def environment_pip():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip) == 1, "environment.yml needs exactly one pip: section"
    return pip[0]


def normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower()


def test_environment_matches_pyproject():
    project = pyproject()["project"]
    expected = list(project["dependencies"])
    for extra in EXTRAS_IN_ENVIRONMENT:
        expected += project["optional-dependencies"][extra]
    expected.append("-e .")
    got = environment_pip()
    assert len(got) == len(set(map(normalise, got))), f"duplicates in environment.yml: {got}"
    missing = sorted(set(map(normalise, expected)) - set(map(normalise, got)))
    extra = sorted(set(map(normalise, got)) - set(map(normalise, expected)))
    assert not missing and not extra, f"environment.yml lacks {missing}, has extra {extra}"


def test_torch_pins_are_exact_and_agree():
    deps = [normalise(d) for d in pyproject()["project"]["dependencies"]]
    pins = {}
    for name in ("torch", "torchvision"):
        matches = [d for d in deps if re.match(rf"{name}(\W|$)", d)]
        assert len(matches) == 1 and re.fullmatch(rf"{name}==\d+(\.\d+)+", matches[0]), matches
        pins[name] = matches[0]
    assert set(pins.values()) <= set(map(normalise, environment_pip()))


def test_environment_python_within_requires_python():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert len(python) == 1
    version = tuple(int(v) for v in python[0].split("=")[-1].split(".")[:2])
    minimum = re.search(r">=\s*(\d+)\.(\d+)", pyproject()["project"]["requires-python"])
    assert version >= (int(minimum[1]), int(minimum[2]))
