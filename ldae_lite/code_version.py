"""The version of the code that decides what a run trains: a hash of the training path's syntax trees.

A cached run is reused only when it was trained by the same code. Hashing the modules' syntax trees
(``ast.dump``) rather than their text means comments, docstrings, blank lines and formatting do not
count: editing an explanation keeps every cached run, editing a line of ``objectives.py`` retrains the
runs it affects. The modules on the training path are listed once, in :data:`TRAINING_PATH`.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
# What a trained run depends on: the network, the corruption, the objective, the tokenizers, the loop,
# the data and the supervised CNN (the perceptual loss). A name is a module (name.py) or a package (name/).
# The probe is not here: a probe change re-probes cached weights (experiment.PROBE_VERSION).
TRAINING_PATH = ("models", "noise", "objectives", "patches", "tokenizers", "conv_vae", "train", "checkpoint",
                 "progress", "batching", "distributed", "data", "supervised", "builders")


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def source_hash(source: str) -> str:
    """A hash of the code in ``source``, blind to comments, docstrings and formatting."""
    tree = _strip_docstrings(ast.parse(source))
    return hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()


def files(names=TRAINING_PATH, package: Path = PACKAGE) -> list[Path]:
    """The source files of ``names`` under ``package`` that exist (a package contributes all its .py files)."""
    out = []
    for name in names:
        if (package / f"{name}.py").exists():
            out.append(package / f"{name}.py")
        elif (package / name).is_dir():
            out.extend(sorted((package / name).rglob("*.py")))
    return out


@functools.lru_cache(maxsize=None)
def training_code_hash(names: tuple[str, ...] = TRAINING_PATH, package: Path = PACKAGE) -> str:
    """12 hex digits that change when, and only when, the code of the training path changes.

    Read once per process (cached), as the modules themselves are imported once: a kernel keeps running
    the code it imported, so its runs are keyed by that code until it restarts."""
    h = hashlib.sha256()
    for path in files(names, package):
        h.update(path.relative_to(package).as_posix().encode())
        h.update(source_hash(path.read_text()).encode())
    return h.hexdigest()[:12]


__all__ = ["TRAINING_PATH", "files", "source_hash", "training_code_hash"]
