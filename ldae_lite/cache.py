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
is trained, and a version number for each kind of change to the code: bumping one retrains (or
re-probes) exactly the runs it concerns. Files are written atomically (:func:`write_json`), and a
corrupted one is reported and treated as absent (:func:`read_json`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import warnings
from pathlib import Path

from . import budgets as budgets_mod
from . import data as data_mod
from .checkpoint import atomic_write
from .recipes import FITTED_WITHOUT_GRADIENT, Recipe, stable_hash

# Bump when a change to the code alters what a run trains: old cached runs stop matching.
# 2: the denoiser is initialised from a freshly seeded generator, so a run trains the same parameters
#    whether its tokenizer was fitted in the same call or loaded from the cache (before, fitting one
#    drew from the global generator first), and whichever process runs it.
CODE_VERSION = 2
# Bump when only the probe changes: a cached run keeps its trained weights and is probed again.
# 3: the probe's lr is chosen on held-out training features (probe.LR_GRID) instead of fixed at 0.03.
# 4: the same SGD with a hand-written gradient (2-3x faster); heads differ from 3's only by rounding.
PROBE_VERSION = 4
# Bump when a change alters what a tokenizer trained by gradient or the CNN learns; it is part of their
# keys, and a run's key holds its tokenizer's key, so exactly the runs that use them are trained again.
# 3: fitted on builders.FIT_THREADS threads (before: on all of the process's threads).
FIT_VERSION = 3
# Bump when a change alters how a recipe with image output on whitened PCA latents trains (steps 12-13 and
# the side entries built on l-DAE); it is part of only those runs' keys.
# 2: their image output is measured and parametrized in whitened PCA units (Objective.pixels); before,
#    raw pixels with a plain MSE, which cost step 12 accuracy on Fashion-MNIST-M (measured in commit ec2e6c8).
WHITENED_IMAGE_VERSION = 2
# Budget fields that only change the probe: not part of a run's key (a change probes the weights again).
PROBE_FIELDS = ("probe_train", "probe_test", "probe_epochs")

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"  # reference results shipped with the repository


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
                       FIT_VERSION])
    return runs_dir() / "cnn" / f"{dataset}-{key}.pt"


def tokenizer_key(recipe: Recipe, budget, dataset: str, seed: int) -> str:
    """What determines a fitted tokenizer: its kind, d, data and seed; for one trained by gradient, also
    the budget's tokenizer and CNN training."""
    trained = trains_tokenizer(recipe)
    dataset = data_mod.identity(dataset)
    parts = ["tok", CODE_VERSION, dataset, recipe.tokenizer, recipe.latent_dim, recipe.resolution_scale,
             recipe.pca_whiten if recipe.tokenizer == "patch_pca" else None, budget.train_subset, seed,
             (budget.tokenizer_steps, budget.tokenizer_batch, budget.cnn_steps, FIT_VERSION) if trained else None]
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
    """What determines a run's training; with a tokenizer trained by gradient, that tokenizer's key too.
    The budget's probe fields are left out: a run probed with other settings is probed again (``run``)."""
    trains = {k: v for k, v in dataclasses.asdict(budget).items() if k not in PROBE_FIELDS}
    parts = [CODE_VERSION, dataclasses.asdict(recipe), trains, data_mod.identity(dataset), seed]
    if trains_tokenizer(recipe):
        parts.append(tokenizer_key(recipe, budget, dataset, seed))
    if recipe.output_space == "image" and recipe.tokenizer == "patch_pca" and recipe.pca_whiten:
        parts.append(["whitened image output", WHITENED_IMAGE_VERSION])
    return stable_hash(parts)


def run_folder(recipe: Recipe, budget=None, dataset: str = "fashion-mnist", seed: int = 0) -> Path:
    """The folder ``experiment.run`` keeps this run in (it need not exist yet)."""
    budget = budgets_mod.get_budget(budget)
    key = run_key(recipe, budget, dataset, seed)
    return runs_dir() / "denoisers" / f"{data_mod.identity(dataset)}-{budget.name}-{key}"


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
    return reusable(read_json(run_folder(recipe, budget, dataset, seed) / "result.json"), generate, budget)
