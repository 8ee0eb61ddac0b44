"""``run(recipe, budget, dataset, seed)``: train what a recipe needs, probe it, and remember the result.

A second call with the same arguments is a cache hit; an interrupted call resumes from the last
checkpoint; a corrupted file is reported and recomputed. Where and under which key things are kept is
:mod:`ldae_lite.cache`; the pieces a run is built from (data, CNN, tokenizer, objective, DiT) are
:mod:`ldae_lite.builders`. The notebooks reach all of it through this module.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import torch

from . import budgets as budgets_mod
from . import cache, timing
from . import device as device_mod
from . import probe as probe_mod
from .batching import batched
from .builders import build, get_cnn, get_tokenizer, load_split, needs_cnn
from .cache import is_done, run_folder, trains_tokenizer
from .noise import SINGLE_SIGMAS, NoiseSchedule
from .objectives import Objective
from .recipes import Recipe
from .train import TrainConfig, train

# What a notebook needs of a run, importable from here (defined in builders and cache).
__all__ = ["PROBE_T", "Result", "build", "encoder_features", "get_cnn", "get_tokenizer", "is_done", "load_model",
           "load_split", "pixel_baseline", "probe_data", "probe_t", "recipe_label", "run", "run_folder",
           "trains_tokenizer"]

PROBE_T = 10  # the paper probes at t = 10 with clean input (Sec. 4.1)


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
    timings: dict = field(default_factory=dict)  # {phase: seconds} of the call that trained it (timing.PHASES)

    @property
    def wall_seconds(self) -> float:
        return self.train_seconds + self.probe_seconds


def run(recipe: Recipe, budget=None, dataset: str = "fashion-mnist", seed: int = 0, *, generate: bool = False,
        progress: bool = True, device=None) -> Result:
    """Train (or reuse) the tokenizer and the denoiser of ``recipe``, probe its encoder, return the result.

    generate: also sample images with DDIM and report a Frechet distance in the CNN's feature space.
    """
    budget = budgets_mod.get_budget(budget)
    device = device or device_mod.get_device(verbose=False)
    folder = run_folder(recipe, budget, dataset, seed)
    stored = cache.read_json(folder / "result.json")
    if cache.reusable(stored, generate, budget):
        print(f"reusing cached run {folder.name} (probe {stored['probe_accuracy']:.2f}%)")
        timing.cached("data", "tokenizers", "training", "features", "probes",  # the work the cache spared
                      *(("cnn",) if generate or needs_cnn(recipe) else ()), *(("sampling",) if generate else ()))
        return Result(**{**stored, "cached": True})
    stale = stored is not None and not cache.probed_as(stored, budget)
    if stale:
        print(f"cached run {folder.name} was probed with an older probe or other probe settings: "
              "reusing its weights, probing again")

    with timing.record() as phases:
        obj, model, rows, labels, stats = _train(recipe, budget, dataset, seed, device, folder, progress)
        start = time.perf_counter()
        lin, knn, test_images = _probe(recipe, budget, dataset, obj, model, rows, labels, device, progress)
        frechet = stored.get("frechet") if stale else None  # sampling does not depend on the probe
        if generate and frechet is None:
            from .sampling import frechet_of_samples
            with timing.phase("sampling"):
                frechet = frechet_of_samples(model, obj, get_cnn(budget, dataset, device, progress), test_images,
                                             n=budget.fid_samples, steps=budget.sample_steps, seed=seed,
                                             device=device)
        probe_seconds = time.perf_counter() - start
    losses = [list(x) for x in stats.losses]
    result = Result(key=cache.run_key(recipe, budget, dataset, seed), recipe=dataclasses.asdict(recipe),
                    budget=budget.name, dataset=dataset, seed=seed, probe_accuracy=float(lin.accuracy),
                    knn_accuracy=float(knn), train_seconds=stats.seconds, probe_seconds=probe_seconds,
                    images_per_s=stats.images_per_s, device=device_mod.describe(device),
                    final_loss=float(losses[-1][1]) if losses else float("nan"), frechet=frechet, losses=losses,
                    created=time.strftime("%Y-%m-%d %H:%M:%S"), commit=cache.git_commit(),
                    probe_version=cache.PROBE_VERSION, probe_base_lr=lin.base_lr,
                    probe=cache.probe_settings(budget), timings=phases.seconds)
    cache.write_json(folder / "result.json", dataclasses.asdict(result))
    return result


def _train(recipe: Recipe, budget, dataset: str, seed: int, device, folder, progress: bool):
    """Fit (or load) the tokenizer, then train (or resume) the denoiser from the checkpoint in ``folder``.
    Returns (objective, model, training rows, training labels, training stats)."""
    tok = get_tokenizer(recipe, budget, dataset, seed, device, progress)
    device_mod.seed_everything(seed)  # the denoiser's init, whatever fitting a tokenizer drew before
    obj, model = build(recipe, tok, budget, dataset)
    images, labels = load_split(dataset, "train", budget, recipe.resolution_scale)
    with timing.phase("data"):
        rows = obj.prepare(images.to(device))
    cfg = TrainConfig(steps=budget.steps, batch_size=budget.batch_size, lr=budget.lr,
                      warmup_frac=budget.warmup_frac, weight_decay=budget.weight_decay)
    with timing.phase("training"):
        stats = train(model.to(device), obj.loss, rows, labels.to(device), cfg, device=device,
                      ckpt_path=folder / "ckpt.pt", seed=seed, desc=recipe_label(recipe), progress=progress)
    return obj, model, rows, labels, stats


def _probe(recipe: Recipe, budget, dataset: str, obj: Objective, model, rows, labels, device, progress: bool):
    """Linear probe and kNN of the encoder on clean input at the fixed t (MAE protocol on frozen features).
    Returns (linear probe result, kNN accuracy, the test images)."""
    t = probe_t(recipe, obj.schedule)
    n_train = budget.probe_train or len(rows)
    test_images, test_labels = load_split(dataset, "test", budget, recipe.resolution_scale)
    with timing.phase("data"):
        test_rows = obj.prepare(test_images.to(device))
    with timing.phase("features"):
        f_train = encoder_features(model, obj, rows[:n_train], t)
        f_test = encoder_features(model, obj, test_rows, t)
    y_train = labels[:n_train].cpu()
    with timing.phase("probes"):
        lin = probe_mod.linear_probe(f_train, y_train, f_test, test_labels, epochs=budget.probe_epochs,
                                     verbose=progress)
        knn = probe_mod.knn_probe(f_train, y_train, f_test, test_labels)
    return lin, knn, test_images


def probe_t(recipe: Recipe, schedule: NoiseSchedule) -> int:
    """t = 10 (the paper's fixed t). A single-level model only ever saw one t: it is probed at that t."""
    sigma = SINGLE_SIGMAS.get(recipe.noise_levels)
    return PROBE_T if sigma is None else schedule.t_for_sigma(sigma)


@torch.no_grad()
def encoder_features(model, obj: Objective, rows: torch.Tensor, t: int, depth=None, batch_size: int = 256):
    """GAP of the encoder tokens on clean input, one batch at a time: (N, width) on the CPU.

    The features do not depend on batch_size (checked to the bit on 1 and 2 threads); 256 keeps a batch
    in the CPU's cache."""
    model.eval()
    dev = next(model.parameters()).device

    def features(batch: torch.Tensor) -> torch.Tensor:  # (B, L, d [+ D]) rows -> (B, width)
        x = obj.clean_input(batch)
        with device_mod.autocast(dev):
            return model.features(x, float(t), depth=depth).float().cpu()

    return batched(features, rows, batch_size, device=dev)  # (N, width)


def load_model(recipe: Recipe, budget=None, dataset: str = "fashion-mnist", seed: int = 0, device=None):
    """The trained (tokenizer, objective, model) of a run, training it first if needed."""
    budget = budgets_mod.get_budget(budget)
    device = device or device_mod.get_device(verbose=False)
    run(recipe, budget, dataset, seed, device=device)
    tok = get_tokenizer(recipe, budget, dataset, seed, device)
    obj, model = build(recipe, tok, budget, dataset)
    folder = run_folder(recipe, budget, dataset, seed)
    state = torch.load(folder / "ckpt.pt", map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    return tok, obj, model.to(device).eval()


def probe_data(recipe: Recipe, budget, dataset: str, seed: int, device=None):
    """What :func:`run` probes, for probing a trained run again another way (other t, depth or lr):
    (objective, model, train rows, train labels, test rows, test labels), the rows prepared as run() does."""
    budget = budgets_mod.get_budget(budget)
    _, obj, model = load_model(recipe, budget, dataset, seed, device)
    images, labels = load_split(dataset, "train", budget, recipe.resolution_scale)
    test_images, test_labels = load_split(dataset, "test", budget, recipe.resolution_scale)
    n_train = budget.probe_train or len(images)
    dev = next(model.parameters()).device
    rows = obj.prepare(images[:n_train].to(dev))
    test_rows = obj.prepare(test_images.to(dev))
    return obj, model, rows, labels[:n_train].cpu(), test_rows, test_labels


def pixel_baseline(dataset: str = "fashion-mnist", budget=None, seed: int = 0, progress: bool = True) -> dict:
    """The raw-pixel linear probe and kNN at a budget's probe sizes, cached under ``runs/baselines``:
    the same numbers every call, so a trajectory (or a notebook) computes them once per dataset and budget.
    Returns {linear, knn, base_lr, n_train, n_test, seconds}."""
    budget = budgets_mod.get_budget(budget)
    path = cache.baseline_path(dataset, budget, seed)
    stored = cache.read_json(path)
    if stored is not None:
        print(f"reusing cached raw-pixel baseline {path.name} (linear probe {stored['linear']:.2f}%)")
        timing.cached("probes")
        return stored
    with timing.phase("probes"):  # its images are loaded inside: their seconds count here too
        r = probe_mod.raw_pixel_baseline(dataset, probe_train=budget.probe_train, probe_test=budget.probe_test,
                                         epochs=budget.probe_epochs, seed=seed, verbose=progress)
    out = dict(linear=r.linear.accuracy, knn=r.knn, base_lr=r.linear.base_lr,
               n_train=r.n_train, n_test=r.n_test, seconds=r.seconds)
    cache.write_json(path, out)
    return out


def recipe_label(recipe: Recipe) -> str:
    """A short readable name: tokenizer, d and target."""
    d = "D" if recipe.latent_dim is None else recipe.latent_dim
    return f"{recipe.tokenizer}/d={d}/{recipe.target}"
