"""The version of the code that decides what a run trains: a hash of the training path's syntax trees.

A cached run is reused only when it was trained by the same code. Hashing the modules' syntax trees
(``ast.dump``) rather than their text means comments, docstrings, blank lines and formatting do not
count: editing an explanation keeps every cached run, editing a line of ``objectives.py`` retrains the
runs it affects. The code on the training path is listed once, in :data:`TRAINING_PATH`: whole modules
and packages, and single functions of a module whose rest is not on the path (``"probe:subset_indices"``).
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
# What a trained run depends on: the network, the corruption, the objective, the tokenizers, the loop and
# its parts (checkpoints, progress, batching, DDP), the device's autocast and seeding, the data, the
# supervised CNN (the perceptual loss), the builders that wire them, and two single functions: the fixed
# training subset (probe.subset_indices, shared with the raw-pixel probe) and the denoiser's training call
# (experiment._train). A name is a module (name.py), a package (name/) or a function ("module:function").
# The probe is not here: a probe change re-probes cached weights (cache.PROBE_VERSION).
TRAINING_PATH = ("models", "noise", "objectives", "patches", "tokenizers", "conv_vae", "train", "checkpoint",
                 "progress", "batching", "distributed", "device", "data", "supervised", "builders",
                 "probe:subset_indices", "experiment:_train")


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
    """The source files of ``names`` under ``package`` that exist (a package contributes all its .py files,
    a "module:function" entry its module's file)."""
    out = []
    for name in (n.split(":")[0] for n in names):
        if (package / f"{name}.py").exists():
            out.append(package / f"{name}.py")
        elif (package / name).is_dir():
            out.extend(sorted((package / name).rglob("*.py")))
    return out


def function_source(path: Path, function: str) -> str:
    """The source of the top-level function ``function`` of the module at ``path``; ValueError when the module
    has none of that name (TRAINING_PATH names a function that was renamed or moved)."""
    source = path.read_text()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function:
            return ast.get_source_segment(source, node)
    raise ValueError(f"{path.name} has no top-level function {function!r} (named in code_version.TRAINING_PATH)")


@functools.lru_cache(maxsize=None)
def training_code_hash(names: tuple[str, ...] = TRAINING_PATH, package: Path = PACKAGE) -> str:
    """12 hex digits that change when, and only when, the code of the training path changes.

    Read once per process (cached), as the modules themselves are imported once: a kernel keeps running
    the code it imported, so its runs are keyed by that code until it restarts."""
    h = hashlib.sha256()
    for name in names:
        module, _, function = name.partition(":")
        for path in files((module,), package):
            h.update(path.relative_to(package).as_posix().encode() + function.encode())
            h.update(source_hash(function_source(path, function) if function else path.read_text()).encode())
    return h.hexdigest()[:12]


__all__ = ["TRAINING_PATH", "files", "function_source", "source_hash", "training_code_hash"]
