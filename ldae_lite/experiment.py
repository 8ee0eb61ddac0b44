"""``run(recipe, budget, dataset, seed)``: train what a recipe needs, probe it, and remember the result.

Everything lands under ``runs/`` (``$LDAE_RUNS`` moves it), keyed by a hash of what determines it:

    runs/cnn/<key>.pt             the label-trained CNN (perceptual loss of the VQGAN-style tokenizer,
                                  and the feature space of our Frechet distance)
    runs/tokenizers/<key>.pt      fitted tokenizers, shared by every recipe that uses the same one
    runs/denoisers/<key>/ckpt.pt  the denoiser's checkpoint (resumed after an interruption)
    runs/denoisers/<key>/result.json

A second call with the same key is a cache hit; an interrupted call resumes from the last checkpoint;
a corrupted file is reported and recomputed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from . import budgets as budgets_mod
from . import data as data_mod
from . import device as device_mod
from . import probe as probe_mod
from . import supervised, tokenizers
from .models import DiT
from .noise import SINGLE_SIGMAS, NoiseSchedule
from .objectives import Objective
from .recipes import Recipe, stable_hash
from .train import TrainConfig, train

# Bump when a change to the code alters what a run trains: old cached runs stop matching.
# 2: the denoiser is initialised from a freshly seeded generator, so a run trains the same parameters
#    whether its tokenizer was fitted in the same call or loaded from the cache (before, fitting one
#    drew from the global generator first), and whichever process runs it.
CODE_VERSION = 2
# Bump when only the probe changes: a cached run keeps its trained weights and is probed again.
# 3: the probe's lr is chosen on held-out training features (probe.LR_GRID) instead of fixed at 0.03.
# 4: the same SGD with a hand-written gradient (2-3x faster); heads differ from 3's only by rounding.
PROBE_VERSION = 4
# Tokenizers trained by gradient and the label-trained CNN are fitted on this many CPU threads, whatever
# the machine has: convolutions round differently with another thread count, and one count makes a fitted
# tokenizer the same bits wherever it is fitted (a notebook, a worker of a parallel trajectory, a bigger
# machine). Small convolutional nets on 32 x 32 images gain little from a second thread anyway.
FIT_THREADS = 1
# Bump when a change alters what a tokenizer trained by gradient or the CNN learns; it is part of their
# keys, and a run's key holds its tokenizer's key, so exactly the runs that use them are trained again.
# 3: fitted on FIT_THREADS threads (before: on all of the process's threads).
FIT_VERSION = 3
# Bump when a change alters how a recipe with image output on whitened PCA latents trains (steps 12-13 and
# the side entries built on l-DAE); it is part of only those runs' keys.
# 2: their image output is measured and parametrized in whitened PCA units (Objective.pixels); before,
#    raw pixels with a plain MSE, which cost step 12 6.6 points on Fashion-MNIST-M.
WHITENED_IMAGE_VERSION = 2
# Budget fields that only change the probe: not part of a run's key (a change probes the weights again).
PROBE_FIELDS = ("probe_train", "probe_test", "probe_epochs")
PROBE_T = 10  # the paper probes at t = 10 with clean input (Sec. 4.1)
NUM_CLASSES = 10


def runs_dir() -> Path:
    return Path(os.environ.get("LDAE_RUNS", Path(__file__).resolve().parents[1] / "runs"))


@dataclass(frozen=True)
class Result:
    """One trained and probed recipe. Accuracies in %."""

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

    @property
    def wall_seconds(self) -> float:
        return self.train_seconds + self.probe_seconds


# --------------------------------------------------------------------------------------------------
# small utilities: atomic JSON, the git commit, data
# --------------------------------------------------------------------------------------------------
def write_json(path: Path, obj) -> None:
    """Write JSON atomically: a crash leaves either the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def load_split(dataset: str, split: str, budget, scale: int = 1, seed: int = 0):
    """Images and labels of a split, cut to the budget's subset and upsampled ``scale`` times (Fig. 5)."""
    ds = data_mod.load(dataset, split)
    images, labels = ds.images, ds.labels
    limit = budget.train_subset if split == "train" else budget.probe_test
    if limit is not None and limit < len(images):
        idx = probe_mod.subset_indices(len(images), limit)  # the same fixed subset as the raw-pixel probe
        images, labels = images[idx], labels[idx]
    if scale != 1:
        images = F.interpolate(images, scale_factor=scale, mode="bilinear", align_corners=False)
    return images, labels


# --------------------------------------------------------------------------------------------------
# cached building blocks: the supervised CNN and the tokenizers
# --------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def fit_threads(device):
    """Inside: torch uses FIT_THREADS CPU threads (on a CPU device); the previous count is restored after."""
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(FIT_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def get_cnn(budget, dataset: str, device, progress: bool = True):
    """The label-trained CNN for (budget, dataset): trained once, then loaded."""
    budget = budgets_mod.get_budget(budget)
    key = stable_hash(["cnn", CODE_VERSION, dataset, budget.cnn_steps, budget.tokenizer_batch, budget.train_subset,
                       FIT_VERSION])
    path = runs_dir() / "cnn" / f"{dataset}-{key}.pt"
    images, labels = load_split(dataset, "train", budget)
    if path.exists():
        try:
            return supervised.load_cnn(path, map_location=device).to(device).eval()
        except Exception as e:  # noqa: BLE001 - any failure to read means recompute
            warnings.warn(f"corrupted file {path} ({e}); retraining the CNN", stacklevel=2)
    partial = path.with_suffix(".partial.pt")  # resumed after an interruption, deleted once `path` is written
    with fit_threads(device):
        cnn, _ = supervised.train_cnn(images, labels, steps=budget.cnn_steps, batch_size=budget.tokenizer_batch,
                                      device=device, seed=0, progress=progress, ckpt_path=partial)
    supervised.save_cnn(cnn, path)
    partial.unlink(missing_ok=True)
    return cnn.eval()


def trains_tokenizer(recipe: Recipe) -> bool:
    """True when the recipe's tokenizer is trained by gradient (PCA is an eigendecomposition, pixel nothing)."""
    return recipe.tokenizer not in ("patch_pca", "pixel")


def tokenizer_key(recipe: Recipe, budget, dataset: str, seed: int) -> str:
    trained = trains_tokenizer(recipe)
    parts = ["tok", CODE_VERSION, dataset, recipe.tokenizer, recipe.latent_dim, recipe.resolution_scale,
             recipe.pca_whiten if recipe.tokenizer == "patch_pca" else None, budget.train_subset, seed,
             (budget.tokenizer_steps, budget.tokenizer_batch, budget.cnn_steps, FIT_VERSION) if trained else None]
    return f"{dataset}-{recipe.tokenizer}-{stable_hash(parts)}"


def get_tokenizer(recipe: Recipe, budget, dataset: str, seed: int = 0, device=None, progress: bool = True):
    """The fitted tokenizer a recipe needs, fitted once per (kind, d, data, budget, seed) and shared."""
    budget = budgets_mod.get_budget(budget)
    device = device or device_mod.get_device(verbose=False)
    path = runs_dir() / "tokenizers" / f"{tokenizer_key(recipe, budget, dataset, seed)}.pt"
    if path.exists():
        try:
            return tokenizers.load_tokenizer(path, map_location=device).to(device).eval()
        except Exception as e:  # noqa: BLE001
            warnings.warn(f"corrupted file {path} ({e}); refitting the tokenizer", stacklevel=2)
    images, labels = load_split(dataset, "train", budget, recipe.resolution_scale)
    s = recipe.resolution_scale
    opts = {"whiten": recipe.pca_whiten} if recipe.tokenizer == "patch_pca" else {}
    device_mod.seed_everything(seed)  # the tokenizer's init depends on its seed alone, not on the caller
    tok = tokenizers.make_tokenizer(recipe.tokenizer, recipe.latent_dim, image_size=images.shape[-1],
                                    channels=images.shape[1], patch_size=8 * s, **opts).to(device)
    cnn = get_cnn(budget, dataset, device, progress) if recipe.tokenizer == "vqgan" else None
    perceptual = supervised.frozen_perceptual_loss(cnn) if cnn is not None else None
    partial = path.with_suffix(".partial.pt")  # resumed after an interruption, deleted once `path` is written
    with fit_threads(device) if trains_tokenizer(recipe) else contextlib.nullcontext():
        tok.fit(images, labels, steps=budget.tokenizer_steps, batch_size=budget.tokenizer_batch, device=device,
                perceptual=perceptual, progress=progress, seed=seed, ckpt_path=partial)
    tokenizers.save_tokenizer(tok, path)
    partial.unlink(missing_ok=True)
    return tok.eval()


# --------------------------------------------------------------------------------------------------
# one recipe: model, objective, training, probe
# --------------------------------------------------------------------------------------------------
def build(recipe: Recipe, tokenizer, budget):
    """The objective and a fresh DiT sized by the budget for this recipe."""
    schedule = NoiseSchedule(recipe.schedule, recipe.input_scaling, SINGLE_SIGMAS.get(recipe.noise_levels))
    obj = Objective(tokenizer, schedule, target=recipe.target, input_space=recipe.input_space,
                    output_space=recipe.output_space, loss_weight=recipe.loss_weight,
                    residual_weight=recipe.residual_weight, class_cond=recipe.class_cond,
                    mask_ratio=recipe.mask_ratio)
    model = DiT(obj.in_dim, tokenizer.num_tokens, out_dim=obj.out_dim, width=budget.width, depth=budget.depth,
                heads=budget.heads, mlp_ratio=budget.mlp_ratio,
                num_classes=NUM_CLASSES if recipe.class_cond else 0)
    return obj, model


def probe_t(recipe: Recipe, schedule: NoiseSchedule) -> int:
    """t = 10 (the paper's fixed t). A single-level model only ever saw one t: it is probed at that t."""
    sigma = SINGLE_SIGMAS.get(recipe.noise_levels)
    return PROBE_T if sigma is None else schedule.t_for_sigma(sigma)


@torch.no_grad()
def encoder_features(model, obj: Objective, rows: torch.Tensor, t: int, depth=None, batch_size: int = 256):
    """GAP of the encoder tokens on clean input, one batch at a time: (N, width) on the CPU.

    The features do not depend on batch_size (checked to the bit on 1 and 2 threads); 256 keeps a batch
    in cache and ran 15% faster than 1024 on a CPU thread."""
    model.eval()
    dev = next(model.parameters()).device
    out = []
    for i in range(0, len(rows), batch_size):
        x = obj.clean_input(rows[i:i + batch_size].to(dev))
        with device_mod.autocast(dev):
            out.append(model.features(x, float(t), depth=depth).float().cpu())
    return torch.cat(out)


def pixel_baseline(dataset: str = "fashion-mnist", budget=None, seed: int = 0, progress: bool = True) -> dict:
    """The raw-pixel linear probe and kNN at a budget's probe sizes, cached under ``runs/baselines``:
    the same numbers every call, so a trajectory (or a notebook) computes them once per dataset and budget.
    Returns {linear, knn, base_lr, n_train, n_test, seconds}."""
    budget = budgets_mod.get_budget(budget)
    key = stable_hash([PROBE_VERSION, dataset, budget.probe_train, budget.probe_test, budget.probe_epochs, seed])
    path = runs_dir() / "baselines" / f"{dataset}-{key}.json"
    cached = read_json(path)
    if cached is not None:
        print(f"reusing cached raw-pixel baseline {path.name} (linear probe {cached['linear']:.2f}%)")
        return cached
    r = probe_mod.raw_pixel_baseline(dataset, probe_train=budget.probe_train, probe_test=budget.probe_test,
                                     epochs=budget.probe_epochs, seed=seed, verbose=progress)
    out = dict(linear=r.linear.accuracy, knn=r.knn, base_lr=r.linear.base_lr,
               n_train=r.n_train, n_test=r.n_test, seconds=r.seconds)
    write_json(path, out)
    return out


def probe_settings(budget) -> dict:
    """The budget's probe fields: they decide how a run is probed, not what it trains."""
    return {name: getattr(budget, name) for name in PROBE_FIELDS}


def run_key(recipe: Recipe, budget, dataset: str, seed: int) -> str:
    """What determines a run's training; with a tokenizer trained by gradient, that tokenizer's key too.
    The budget's probe fields are left out: a run probed with other settings is probed again (``run``)."""
    trains = {k: v for k, v in dataclasses.asdict(budget).items() if k not in PROBE_FIELDS}
    parts = [CODE_VERSION, dataclasses.asdict(recipe), trains, dataset, seed]
    if trains_tokenizer(recipe):
        parts.append(tokenizer_key(recipe, budget, dataset, seed))
    if recipe.output_space == "image" and recipe.tokenizer == "patch_pca" and recipe.pca_whiten:
        parts.append(["whitened image output", WHITENED_IMAGE_VERSION])
    return stable_hash(parts)


def run_folder(recipe: Recipe, budget=None, dataset: str = "fashion-mnist", seed: int = 0) -> Path:
    """The folder ``run`` keeps this run in (it need not exist yet)."""
    budget = budgets_mod.get_budget(budget)
    return runs_dir() / "denoisers" / f"{dataset}-{budget.name}-{run_key(recipe, budget, dataset, seed)}"


def run(recipe: Recipe, budget=None, dataset: str = "fashion-mnist", seed: int = 0, *, generate: bool = False,
        progress: bool = True, device=None) -> Result:
    """Train (or reuse) the tokenizer and the denoiser of ``recipe``, probe its encoder, return the result.

    generate: also sample images with DDIM and report a Frechet distance in the CNN's feature space.
    """
    budget = budgets_mod.get_budget(budget)
    device = device or device_mod.get_device(verbose=False)
    key = run_key(recipe, budget, dataset, seed)
    folder = run_folder(recipe, budget, dataset, seed)
    cached = read_json(folder / "result.json")
    stale = cached is not None and not _probed_as(cached, budget)
    if _reusable(cached, generate, budget):
        print(f"reusing cached run {folder.name} (probe {cached['probe_accuracy']:.2f}%)")
        return Result(**{**cached, "cached": True})
    if stale:
        print(f"cached run {folder.name} was probed with an older probe or other probe settings: "
              "reusing its weights, probing again")

    tok = get_tokenizer(recipe, budget, dataset, seed, device, progress)
    device_mod.seed_everything(seed)  # the denoiser's init, whatever fitting a tokenizer drew before
    obj, model = build(recipe, tok, budget)
    images, labels = load_split(dataset, "train", budget, recipe.resolution_scale)
    rows = obj.prepare(images.to(device))
    cfg = TrainConfig(steps=budget.steps, batch_size=budget.batch_size, lr=budget.lr,
                      warmup_frac=budget.warmup_frac, weight_decay=budget.weight_decay)
    stats = train(model.to(device), obj.loss, rows, labels.to(device), cfg, device=device,
                  ckpt_path=folder / "ckpt.pt", seed=seed, desc=recipe_label(recipe), progress=progress)

    # linear probe and kNN on clean input at the fixed t (MAE protocol on frozen features)
    start = time.perf_counter()
    t = probe_t(recipe, obj.schedule)
    n_train = budget.probe_train or len(rows)
    test_images, test_labels = load_split(dataset, "test", budget, recipe.resolution_scale)
    test_rows = obj.prepare(test_images.to(device))
    f_train = encoder_features(model, obj, rows[:n_train], t)
    f_test = encoder_features(model, obj, test_rows, t)
    y_train = labels[:n_train].cpu()
    lin = probe_mod.linear_probe(f_train, y_train, f_test, test_labels, epochs=budget.probe_epochs,
                                 verbose=progress)
    knn = probe_mod.knn_probe(f_train, y_train, f_test, test_labels)
    frechet = cached.get("frechet") if stale else None  # sampling does not depend on the probe
    if generate and frechet is None:
        from .sampling import frechet_of_samples
        frechet = frechet_of_samples(model, obj, get_cnn(budget, dataset, device, progress), test_images,
                                     n=budget.fid_samples, steps=budget.sample_steps, seed=seed, device=device)
    probe_seconds = time.perf_counter() - start
    losses = [list(x) for x in stats.losses]
    result = Result(key=key, recipe=dataclasses.asdict(recipe), budget=budget.name, dataset=dataset, seed=seed,
                    probe_accuracy=float(lin.accuracy), knn_accuracy=float(knn), train_seconds=stats.seconds,
                    probe_seconds=probe_seconds, images_per_s=stats.images_per_s,
                    device=device_mod.describe(device), final_loss=float(losses[-1][1]) if losses else float("nan"),
                    frechet=frechet, losses=losses, created=time.strftime("%Y-%m-%d %H:%M:%S"), commit=git_commit(),
                    probe_version=PROBE_VERSION, probe_base_lr=lin.base_lr, probe=probe_settings(budget))
    write_json(folder / "result.json", dataclasses.asdict(result))
    return result


def _probed_as(cached: dict, budget) -> bool:
    """A stored result was probed with the current probe and this budget's probe settings."""
    return cached.get("probe_version", 1) == PROBE_VERSION and cached.get("probe") == probe_settings(budget)


def _reusable(cached: dict | None, generate: bool, budget) -> bool:
    """A stored result answers the call: probed as this budget probes, and sampled if asked to."""
    return (cached is not None and _probed_as(cached, budget)
            and (cached.get("frechet") is not None or not generate))


def is_done(recipe: Recipe, budget=None, dataset: str = "fashion-mnist", seed: int = 0, generate: bool = False) -> bool:
    """Whether ``run`` with these arguments would return a stored result without training or probing."""
    budget = budgets_mod.get_budget(budget)
    return _reusable(read_json(run_folder(recipe, budget, dataset, seed) / "result.json"), generate, budget)


def load_model(recipe: Recipe, budget=None, dataset: str = "fashion-mnist", seed: int = 0, device=None):
    """The trained (tokenizer, objective, model) of a run, training it first if needed."""
    budget = budgets_mod.get_budget(budget)
    device = device or device_mod.get_device(verbose=False)
    run(recipe, budget, dataset, seed, device=device)
    tok = get_tokenizer(recipe, budget, dataset, seed, device)
    obj, model = build(recipe, tok, budget)
    folder = run_folder(recipe, budget, dataset, seed)
    state = torch.load(folder / "ckpt.pt", map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    return tok, obj, model.to(device).eval()


def recipe_label(recipe: Recipe) -> str:
    """A short readable name: tokenizer, d and target."""
    d = "D" if recipe.latent_dim is None else recipe.latent_dim
    return f"{recipe.tokenizer}/d={d}/{recipe.target}"
