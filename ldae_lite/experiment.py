"""``run(recipe, budget, dataset, seed)``: train what a recipe needs, probe it, and remember the result.

A second call with the same arguments is a cache hit; an interrupted call resumes from the last
checkpoint; a corrupted or incomplete file is reported and recomputed; ``fresh=True`` (or ``LDAE_FRESH=1``)
recomputes instead of reusing. What a call is given is checked where it enters (:mod:`ldae_lite.validate`).
Where and under which key things are kept is :mod:`ldae_lite.cache`; the pieces a run is built from
(data, CNN, tokenizer, objective, DiT) are :mod:`ldae_lite.builders`. The notebooks reach all of it
through this module.
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import torch

from . import budgets as budgets_mod
from . import cache, timing, validate
from . import device as device_mod
from . import probe as probe_mod
from .batching import batched
from .builders import build, get_cnn, get_tokenizer, load_split, needs_cnn
from .cache import Result, is_done, run_folder, trains_tokenizer
from .noise import SINGLE_SIGMAS, NoiseSchedule
from .objectives import Objective
from .recipes import Recipe
from .train import TrainConfig, load_run, train

# What a notebook needs of a run, importable from here (defined in builders and cache).
__all__ = ["PROBE_T", "Result", "build", "encoder_features", "get_cnn", "get_tokenizer", "is_done", "load_model",
           "load_split", "pixel_baseline", "probe_data", "probe_t", "recipe_label", "run", "run_folder",
           "trains_tokenizer"]

PROBE_T = 10  # the paper probes at t = 10 with clean input (Sec. 4.1)


def run(recipe: Recipe, budget=None, dataset: str = "fashion-mnist", seed: int = 0, *, generate: bool = False,
        progress: bool = True, device=None, fresh: bool = False) -> Result:
    """Train (or reuse) the tokenizer and the denoiser of ``recipe``, probe its encoder, return the result.

    generate: also sample images with DDIM and report a Frechet distance in the CNN's feature space.
    fresh: reuse nothing cached (the CNN, the tokenizer, the checkpoint, the result): fit, train and probe
    again, and store what comes out. ``LDAE_FRESH=1`` does the same for every call of a process, once.
    """
    recipe, seed = _checked(recipe, seed)
    flags = {name: validate.boolean(name, value) for name, value in
             (("generate", generate), ("progress", progress), ("fresh", fresh))}
    if flags.pop("fresh"):
        with cache.fresh():
            return run(recipe, budget, dataset, seed, device=device, **flags)
    budget = budgets_mod.get_budget(budget)
    device = device or device_mod.get_device(verbose=False)
    folder = run_folder(recipe, budget, dataset, seed)
    cache.claim_run(folder)
    stored = cache.read_result(folder / "result.json")
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
    with timing.phase("training"):
        stats = train(model.to(device), obj.loss, rows, labels.to(device), train_config(budget), device=device,
                      ckpt_path=folder / "ckpt.pt", seed=seed, desc=recipe_label(recipe), progress=progress)
    return obj, model, rows, labels, stats


def train_config(budget) -> TrainConfig:
    """The denoiser's optimisation, from the budget: what its checkpoint must have been trained with."""
    return TrainConfig(steps=budget.steps, batch_size=budget.batch_size, lr=budget.lr,
                       warmup_frac=budget.warmup_frac, weight_decay=budget.weight_decay)


def _checked(recipe, seed) -> tuple[Recipe, int]:
    """The recipe and the seed of a call, checked (an error names what was given and what is allowed)."""
    if not isinstance(recipe, Recipe):
        raise validate.BadType(f"recipe must be a Recipe (e.g. recipes.LDAE or recipes.get_step('patch_pca')"
                               f".recipe), got {recipe!r} ({type(recipe).__name__})")
    return recipe, validate.seed(seed)


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
    """The trained (tokenizer, objective, model) of a run, training it first if needed.

    The weights come through the loader that training resumes from (:func:`ldae_lite.train.load_run`), so a
    checkpoint that ``run`` trusts loads here; one that cannot be used (missing, damaged, with weights
    that are not finite, or unfinished beside a stored result) is reported and the run trained again."""
    recipe, seed = _checked(recipe, seed)
    budget = budgets_mod.get_budget(budget)
    device = device or device_mod.get_device(verbose=False)
    folder = run_folder(recipe, budget, dataset, seed)
    run(recipe, budget, dataset, seed, device=device)
    ckpt = load_run(folder / "ckpt.pt", train_config(budget), seed)
    if ckpt is None or ckpt["step"] < budget.steps:
        warnings.warn(f"{folder / 'ckpt.pt'} does not hold the finished run that result.json reports; "
                      "training the run again", stacklevel=2)
        (folder / "result.json").unlink(missing_ok=True)
        run(recipe, budget, dataset, seed, device=device)
        ckpt = load_run(folder / "ckpt.pt", train_config(budget), seed)
    tok = get_tokenizer(recipe, budget, dataset, seed, device)
    obj, model = build(recipe, tok, budget, dataset)
    model.load_state_dict(ckpt["model"])
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
    path = cache.baseline_path(dataset, budget, validate.seed(seed))
    cache.claim(path)
    stored = cache.read_record(path, cache.BASELINE_SCHEMA)
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
