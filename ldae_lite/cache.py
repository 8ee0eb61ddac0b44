"""Where runs are stored, under which key, and whether a stored result still answers a call.

Everything lands under ``runs/`` (``$LDAE_RUNS`` moves it), keyed by a hash of what determines it:

    runs/cnn/<dataset>-<key>.pt           the label-trained CNN (perceptual loss of the VQGAN-style
                                          tokenizer, and the feature space of our Frechet distance)
    runs/tokenizers/<key>.pt              fitted tokenizers, shared by every recipe that uses the same one
    runs/denoisers/<run>/ckpt.pt          the denoiser's checkpoint (resumed after an interruption)
    runs/denoisers/<run>/result.json      the probed result (``experiment.Result``)
    runs/denoisers/<run>/analysis.json    probes at other t and depths (``analysis``)
    runs/baselines/<dataset>-<key>.json   the raw-pixel probe

``<dataset>`` is :func:`ldae_lite.data.identity`: a built-in dataset's name, or a dataset of your own's
name and a fingerprint of its images (also part of every key). A key holds everything that changes what
is trained, the code that trains it (a hash of the training path's syntax trees,
:func:`ldae_lite.code_version.training_code_hash`: a run made by other code is never reused) and a
version number for what the hash cannot see. Files are written atomically
(:func:`write_json`). A stored record is checked when it is read back (:func:`read_record`): a damaged
file, a missing field or a field of the wrong type is reported, naming the file and the field, and the
record is computed again. ``LDAE_FRESH=1`` (or ``experiment.run(..., fresh=True)``, or ``--fresh``)
recomputes every cached file once instead of reusing it (:func:`claim`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from . import budgets as budgets_mod
from . import code_version, validate
from . import data as data_mod
from .checkpoint import atomic_write
from .recipes import FITTED_WITHOUT_GRADIENT, Recipe, stable_hash

# Every key holds the training code's hash, so an edit on the training path (code_version.TRAINING_PATH)
# retrains exactly what it can change, with no number to bump. Bump CODE_VERSION by hand only for a change
# the hash cannot see, such as a dependency that now trains differently, or to retrain everything on purpose.
# 2: the denoiser is initialised from a freshly seeded generator (history; the hash now sees such a change).
CODE_VERSION = 2
# The probe is not on the training path: a probe change must not retrain, only probe the cached weights
# again, so it is versioned by hand. Bump when a change to the probe alters its numbers.
# 3: the probe's lr is chosen on held-out training features (probe.LR_GRID) instead of fixed at 0.03.
# 4: the same SGD with a hand-written gradient (2-3x faster); heads differ from 3's only by rounding.
PROBE_VERSION = 4
# Budget fields that only change the probe: not part of a run's key (a change probes the weights again).
PROBE_FIELDS = ("probe_train", "probe_test", "probe_epochs")

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"  # reference results shipped with the repository
FRESH_VAR = "LDAE_FRESH"  # 1: recompute every cached file once instead of reusing it (see claim)
_SESSION_VAR = "LDAE_FRESH_SESSION"  # the fresh session a process and the workers it starts belong to


@dataclass(frozen=True)
class Result:
    """One trained and probed recipe, as ``experiment.run`` returns it and result.json keeps it. Accuracies in %."""

    key: str
    recipe: dict
    budget: str
    dataset: str
    seed: int
    probe_accuracy: float
    knn_accuracy: float
    train_seconds: float
    probe_seconds: float
    images_per_s: float
    device: str
    final_loss: float
    frechet: float | None = None
    losses: list = field(default_factory=list)
    cached: bool = False
    created: str = ""
    commit: str = ""
    probe_version: int = 1
    probe_base_lr: float | None = None  # the base lr the probe chose (per 256 examples)
    probe: dict | None = None  # the budget's probe settings the accuracies were measured with
    timings: dict = field(default_factory=dict)  # {phase: seconds} of the call that trained it (timing.PHASES)

    @property
    def wall_seconds(self) -> float:
        return self.train_seconds + self.probe_seconds


# What a stored record must hold to be used (validate.record: "name?" may be missing). A result's fields
# are Result's; a file written before a field with a default existed still reads.
RESULT_SCHEMA = validate.dataclass_schema(Result)
BASELINE_SCHEMA = {"linear": float, "knn": float, "base_lr?": float, "n_train": int, "n_test": int, "seconds": float}
REPORT_SCHEMA = {  # a trajectory report (trajectory.run), as report.py and compare.py read it
    "meta": {"budget": str, "dataset": str, "seeds": [int], "device": str, "torch": str, "commit": str,
             "created": str, "wall_seconds": float, "label?": str, "overrides?": dict, "file_stem?": str,
             "note?": str},
    "raw_pixels": {"linear": float, "knn": float},
    "steps": [{"key": str, "label": str, "legitimate": bool, "paper": float, "mean": (float, type(None)),
               "std": (float, type(None)), "knn": (float, type(None)), "frechet": (float, type(None)),
               "accuracies?": [(float, type(None))], "same_sign?": (bool, type(None)),
               "within_noise?": (bool, type(None)), "train_seconds?": (float, type(None)), "cached?": bool}],
}


def runs_dir() -> Path:
    """The cache folder: ``$LDAE_RUNS``, or ``runs/`` at the repository's root."""
    return Path(os.environ.get("LDAE_RUNS", Path(__file__).resolve().parents[1] / "runs"))


# --------------------------------------------------------------------------------------------------
# files: atomic writes, reads that survive a damaged file, the commit that wrote them
# --------------------------------------------------------------------------------------------------
def write_json(path: Path, obj) -> None:
    """Write JSON atomically: a crash leaves either the old file or the new one, never half of one."""
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=1).encode()))


def write_text(path: Path, text: str) -> None:
    """Write text (UTF-8) atomically, as :func:`write_json`."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def read_json(path: Path):
    """The parsed file, or None (with a warning naming it) when it is missing or corrupted."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        warnings.warn(f"corrupted file {path} ({e}); recomputing it", stacklevel=3)
        return None


def read_record(path: Path, schema, what: str = "recomputing it"):
    """:func:`read_json`, then checked against ``schema`` (:func:`ldae_lite.validate.record`): None, with a
    warning naming the file, the field and ``what`` happens instead, when a field is missing or mistyped."""
    stored = read_json(path)
    problems = [] if stored is None else validate.record(stored, schema)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        warnings.warn(f"{path}: {problems[0]}{more}; {what}", stacklevel=3)
        return None
    return stored


def read_result(path: Path) -> dict | None:
    """A stored result.json as a dict of :class:`Result`'s fields (fields Result does not know are left
    out), or None when it is missing, damaged or incomplete (warned)."""
    stored = read_record(path, RESULT_SCHEMA)
    names = {f.name for f in dataclasses.fields(Result)}
    return None if stored is None else {k: v for k, v in stored.items() if k in names}


def git_commit() -> str:
    """The short hash of the checked-out commit ("" outside a git checkout): stored with every result."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# --------------------------------------------------------------------------------------------------
# keys and paths
# --------------------------------------------------------------------------------------------------
def trains_tokenizer(recipe: Recipe) -> bool:
    """True when the recipe's tokenizer is trained by gradient (PCA is an eigendecomposition, pixel nothing)."""
    return recipe.tokenizer not in FITTED_WITHOUT_GRADIENT


def cnn_path(budget, dataset: str) -> Path:
    """Where the label-trained CNN of (budget, dataset) is kept."""
    budget = budgets_mod.get_budget(budget)
    dataset = data_mod.identity(dataset)  # a dataset of your own: its name and a fingerprint of its images
    key = stable_hash(["cnn", CODE_VERSION, dataset, budget.cnn_steps, budget.tokenizer_batch, budget.train_subset,
                       code_version.training_code_hash()])
    return runs_dir() / "cnn" / f"{dataset}-{key}.pt"


def tokenizer_key(recipe: Recipe, budget, dataset: str, seed: int) -> str:
    """What determines a fitted tokenizer: its kind, d, data, seed and the training code; for one trained by
    gradient, also the budget's tokenizer and CNN training."""
    trained = trains_tokenizer(recipe)
    dataset = data_mod.identity(dataset)
    parts = ["tok", CODE_VERSION, dataset, recipe.tokenizer, recipe.latent_dim, recipe.resolution_scale,
             recipe.pca_whiten if recipe.tokenizer == "patch_pca" else None, budget.train_subset, seed,
             (budget.tokenizer_steps, budget.tokenizer_batch, budget.cnn_steps) if trained else None,
             code_version.training_code_hash()]
    return f"{dataset}-{recipe.tokenizer}-{stable_hash(parts)}"


def tokenizer_path(recipe: Recipe, budget, dataset: str, seed: int) -> Path:
    """Where the fitted tokenizer of a recipe is kept."""
    budget = budgets_mod.get_budget(budget)
    return runs_dir() / "tokenizers" / f"{tokenizer_key(recipe, budget, dataset, seed)}.pt"


def baseline_path(dataset: str, budget, seed: int) -> Path:
    """Where the raw-pixel probe at a budget's probe sizes is kept."""
    budget = budgets_mod.get_budget(budget)
    dataset = data_mod.identity(dataset)
    key = stable_hash([PROBE_VERSION, dataset, budget.probe_train, budget.probe_test, budget.probe_epochs, seed])
    return runs_dir() / "baselines" / f"{dataset}-{key}.json"


def run_key(recipe: Recipe, budget, dataset: str, seed: int) -> str:
    """What determines a run's training, the training code included; with a tokenizer trained by gradient,
    that tokenizer's key too. The budget's probe fields are left out: a run probed with other settings is
    probed again (``run``)."""
    trains = {k: v for k, v in dataclasses.asdict(budget).items() if k not in PROBE_FIELDS}
    parts = [CODE_VERSION, dataclasses.asdict(recipe), trains, data_mod.identity(dataset), seed]
    if trains_tokenizer(recipe):
        parts.append(tokenizer_key(recipe, budget, dataset, seed))
    parts.append(code_version.training_code_hash())
    return stable_hash(parts)


def run_folder(recipe: Recipe, budget=None, dataset: str = "fashion-mnist", seed: int = 0) -> Path:
    """The folder ``experiment.run`` keeps this run in (it need not exist yet)."""
    budget = budgets_mod.get_budget(budget)
    key = run_key(recipe, budget, dataset, seed)
    return runs_dir() / "denoisers" / f"{data_mod.identity(dataset)}-{budget.name}-{key}"


# --------------------------------------------------------------------------------------------------
# fresh runs: each cached file recomputed once, instead of reused
# --------------------------------------------------------------------------------------------------
_call_session: str | None = None  # the session of a run(..., fresh=True) in progress (see fresh())


def fresh_session() -> str | None:
    """The fresh session this process belongs to, or None when cached files are reused as usual.

    ``LDAE_FRESH=1``: one session per process (a command, a notebook kernel), shared with the worker
    processes it starts (they inherit its environment); inside :func:`fresh`, that call's own session.
    A session's claims are empty files under ``runs/.fresh/<session>``, safe to delete once it has ended."""
    if _call_session is not None:
        return _call_session
    flag = os.environ.get(FRESH_VAR, "").strip()
    if validate.one_of(f"${FRESH_VAR}", flag or "0", ("0", "1")) == "0":
        return None
    return os.environ.setdefault(_SESSION_VAR, uuid.uuid4().hex[:12])


@contextlib.contextmanager
def fresh():
    """Inside: a session of its own, so every cached file the code asks for is recomputed once (what
    ``experiment.run(..., fresh=True)`` does); its claims are forgotten afterwards."""
    global _call_session
    before, _call_session = _call_session, uuid.uuid4().hex[:12]
    try:
        yield
    finally:
        shutil.rmtree(_claims_dir(_call_session), ignore_errors=True)
        _call_session = before


def _claims_dir(session: str) -> Path:
    return runs_dir() / ".fresh" / session


def _claim_marker(session: str, path: Path) -> Path:
    return _claims_dir(session) / stable_hash(str(Path(path).resolve()), n=16)


def claimed(path: Path) -> bool:
    """Whether ``path`` may be reused: always outside a fresh session; inside one, once it was claimed."""
    session = fresh_session()
    return session is None or _claim_marker(session, path).exists()


def claim(path: Path, *companions: Path) -> None:
    """In a fresh session, the first claim of ``path`` deletes it and its ``companions`` (a checkpoint, a
    partial fit), so that it is computed again; later claims in the session, in any of its processes, keep
    what is there by then. Outside a fresh session: nothing. (Claims are files, created with O_EXCL: one
    process wins; a session is meant for one command or kernel at a time.)"""
    session = fresh_session()
    if session is None:
        return
    marker = _claim_marker(session, path)
    marker.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    for p in (path, *companions):
        Path(p).unlink(missing_ok=True)


def claim_run(folder: Path) -> None:
    """:func:`claim` a run's result; its checkpoint and its analysis.json go with it."""
    claim(folder / "result.json", folder / "ckpt.pt", folder / "analysis.json")


# --------------------------------------------------------------------------------------------------
# does a stored result answer the call?
# --------------------------------------------------------------------------------------------------
def probe_settings(budget) -> dict:
    """The budget's probe fields: they decide how a run is probed, not what it trains."""
    return {name: getattr(budget, name) for name in PROBE_FIELDS}


def probed_as(stored: dict, budget) -> bool:
    """A stored result was probed with the current probe and this budget's probe settings."""
    return stored.get("probe_version", 1) == PROBE_VERSION and stored.get("probe") == probe_settings(budget)


def reusable(stored: dict | None, generate: bool, budget) -> bool:
    """A stored result answers the call: probed as this budget probes, and sampled if asked to."""
    return (stored is not None and probed_as(stored, budget)
            and (stored.get("frechet") is not None or not generate))


def is_done(recipe: Recipe, budget=None, dataset: str = "fashion-mnist", seed: int = 0, generate: bool = False) -> bool:
    """Whether ``experiment.run`` with these arguments would return a stored result without training or
    probing (with a Frechet distance, if ``generate``)."""
    budget = budgets_mod.get_budget(budget)
    path = run_folder(recipe, budget, dataset, seed) / "result.json"
    return claimed(path) and reusable(read_result(path), generate, budget)
