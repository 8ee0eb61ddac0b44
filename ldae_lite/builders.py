"""The pieces a run is built from: its data, the label-trained CNN, the fitted tokenizer, the objective and
a fresh DiT. The CNN and the tokenizers are fitted once and kept under ``runs/`` (:mod:`ldae_lite.cache`);
a file that cannot be read is reported and fitted again.
"""

from __future__ import annotations

import contextlib
import warnings

import torch
import torch.nn.functional as F

from . import budgets as budgets_mod
from . import cache, supervised, timing, tokenizers
from . import data as data_mod
from . import device as device_mod
from . import probe as probe_mod
from .models import DiT
from .noise import SINGLE_SIGMAS, NoiseSchedule
from .objectives import Objective
from .recipes import Recipe

# Tokenizers trained by gradient and the label-trained CNN are fitted on this many CPU threads, whatever
# the machine has: convolutions round differently with another thread count, and one count makes a fitted
# tokenizer the same bits wherever it is fitted (a notebook, a worker of a parallel trajectory, a bigger
# machine). Small convolutional nets on 32 x 32 images gain little from a second thread anyway.
# (A change here changes what is fitted; builders is on code_version.TRAINING_PATH, so the keys follow it.)
FIT_THREADS = 1
NUM_CLASSES = 10


def load_split(dataset: str, split: str, budget, scale: int = 1, seed: int = 0):
    """Images and labels of a split, cut to the budget's subset and upsampled ``scale`` times (Fig. 5)."""
    with timing.phase("data"):
        return _load_split(dataset, split, budget, scale)


def _load_split(dataset: str, split: str, budget, scale: int):
    ds = data_mod.load(dataset, split)
    images, labels = ds.images, ds.labels
    limit = budget.train_subset if split == "train" else budget.probe_test
    if limit is not None and limit < len(images):
        idx = probe_mod.subset_indices(len(images), limit)  # the same fixed subset as the raw-pixel probe
        images, labels = images[idx], labels[idx]
    if scale != 1:
        images = F.interpolate(images, scale_factor=scale, mode="bilinear", align_corners=False)
    return images, labels


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


def needs_cnn(recipe: Recipe) -> bool:
    """True when fitting the recipe's tokenizer needs the label-trained CNN (the VQGAN-style perceptual loss)."""
    return recipe.tokenizer == "vqgan"


def get_cnn(budget, dataset: str, device, progress: bool = True):
    """The label-trained CNN for (budget, dataset): trained once, then loaded."""
    budget = budgets_mod.get_budget(budget)
    path = cache.cnn_path(budget, dataset)
    cache.claim(path, path.with_suffix(".partial.pt"))  # in a fresh session: fitted again, once
    images, labels = load_split(dataset, "train", budget)
    if path.exists():
        try:
            cnn = supervised.load_cnn(path, map_location=device).to(device).eval()
            timing.cached("cnn")
            return cnn
        except Exception as e:  # noqa: BLE001 - any failure to read means recompute
            warnings.warn(f"corrupted file {path} ({e}); retraining the CNN", stacklevel=2)
    partial = path.with_suffix(".partial.pt")  # resumed after an interruption, deleted once `path` is written
    with fit_threads(device), timing.phase("cnn"):
        cnn, _ = supervised.train_cnn(images, labels, steps=budget.cnn_steps, batch_size=budget.tokenizer_batch,
                                      device=device, seed=0, progress=progress, ckpt_path=partial)
    supervised.save_cnn(cnn, path)
    partial.unlink(missing_ok=True)
    return cnn.eval()


def get_tokenizer(recipe: Recipe, budget, dataset: str, seed: int = 0, device=None, progress: bool = True):
    """The fitted tokenizer a recipe needs, fitted once per (kind, d, data, budget, seed) and shared."""
    budget = budgets_mod.get_budget(budget)
    device = device or device_mod.get_device(verbose=False)
    path = cache.tokenizer_path(recipe, budget, dataset, seed)
    cache.claim(path, path.with_suffix(".partial.pt"))  # in a fresh session: fitted again, once
    if path.exists():
        try:
            tok = tokenizers.load_tokenizer(path, map_location=device).to(device).eval()
            timing.cached("tokenizers")
            return tok
        except Exception as e:  # noqa: BLE001
            warnings.warn(f"corrupted file {path} ({e}); refitting the tokenizer", stacklevel=2)
    images, labels = load_split(dataset, "train", budget, recipe.resolution_scale)
    s = recipe.resolution_scale
    opts = {"whiten": recipe.pca_whiten} if recipe.tokenizer == "patch_pca" else {}
    device_mod.seed_everything(seed)  # the tokenizer's init depends on its seed alone, not on the caller
    tok = tokenizers.make_tokenizer(recipe.tokenizer, recipe.latent_dim, image_size=images.shape[-1],
                                    channels=images.shape[1], patch_size=8 * s, **opts).to(device)
    cnn = get_cnn(budget, dataset, device, progress) if needs_cnn(recipe) else None
    perceptual = supervised.frozen_perceptual_loss(cnn) if cnn is not None else None
    partial = path.with_suffix(".partial.pt")  # resumed after an interruption, deleted once `path` is written
    threads = fit_threads(device) if cache.trains_tokenizer(recipe) else contextlib.nullcontext()
    with threads, timing.phase("tokenizers"):
        tok.fit(images, labels, steps=budget.tokenizer_steps, batch_size=budget.tokenizer_batch, device=device,
                perceptual=perceptual, progress=progress, seed=seed, ckpt_path=partial)
    tokenizers.save_tokenizer(tok, path)
    partial.unlink(missing_ok=True)
    return tok.eval()


def build(recipe: Recipe, tokenizer, budget, dataset: str | None = None):
    """The objective and a fresh DiT sized by the budget for this recipe: (objective, model). A class-conditional
    model gets a label row per class of ``dataset`` (None: NUM_CLASSES, as every built-in dataset has)."""
    schedule = NoiseSchedule(recipe.schedule, recipe.input_scaling, SINGLE_SIGMAS.get(recipe.noise_levels))
    classes = NUM_CLASSES if dataset is None else data_mod.num_classes(dataset)
    obj = Objective(tokenizer, schedule, target=recipe.target, input_space=recipe.input_space,
                    output_space=recipe.output_space, loss_weight=recipe.loss_weight,
                    residual_weight=recipe.residual_weight, class_cond=recipe.class_cond,
                    mask_ratio=recipe.mask_ratio)
    model = DiT(obj.in_dim, tokenizer.num_tokens, out_dim=obj.out_dim, width=budget.width, depth=budget.depth,
                heads=budget.heads, mlp_ratio=budget.mlp_ratio,
                num_classes=classes if recipe.class_cond else 0)
    return obj, model
