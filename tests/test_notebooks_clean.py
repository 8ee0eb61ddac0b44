"""Notebooks are committed without outputs or execution counts (they are run, not read, for results), every
cell has a unique id (nbformat 4.5; a missing id is a warning now and an error in later nbformat), every
notebook takes its dataset from the LDAE_DATASET switch, and the notebooks pass ruff like the package."""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# The notebooks that put two datasets side by side on purpose (00: why the default; 09: both trajectories).
CONTRASTS = {"00_setup_and_probe.ipynb", "09_the_whole_trajectory.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_has_no_outputs(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    dirty = [i for i, cell in enumerate(notebook["cells"]) if cell["cell_type"] == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: code cells {dirty} have outputs or execution counts; clear them "
                       f"(e.g. jupyter nbconvert --clear-output --inplace notebooks/{path.name})")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_cell_has_a_unique_id(path):
    ids = [cell.get("id") for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]]
    missing = [i for i, cell_id in enumerate(ids) if not cell_id]
    assert not missing, f"{path.name}: cells {missing} have no id"
    assert len(set(ids)) == len(ids), f"{path.name}: repeated cell ids {sorted({i for i in ids if ids.count(i) > 1})}"


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb files"


def code_of(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_the_dataset_comes_from_the_switch(path):
    code = code_of(path)
    assert "DATASET = data.default_dataset()" in code, f"{path.name}: read the dataset from $LDAE_DATASET"
    named = re.findall(r"""["'](?:fashion-mnist|fashion-mnist-m|cifar10|digits)["']""", code)
    assert not named or path.name in CONTRASTS, f"{path.name} names a dataset in code: {named}; use DATASET"


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff not installed (pip install -e .[dev])")
def test_notebooks_pass_ruff():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *map(str, NOTEBOOKS)], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
