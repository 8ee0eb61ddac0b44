"""How good is a trained run's encoder on *your* images? ``probe_images`` answers with the linear probe and
the kNN probe the trajectory reports, measured on images and labels you give.

The run is one of :mod:`ldae_lite.experiment`'s: a trajectory step (or any recipe), a budget, the dataset
it is trained on, a seed; it is trained first when it is not cached. Its encoder then sees your images the
way :func:`ldae_lite.experiment.run` shows it its test images: clean input through the tokenizer at the
fixed probe t (:func:`ldae_lite.experiment.probe_t`), global-average-pooled. Your images are converted
to what the run was trained on (size, grey or RGB; :func:`ldae_lite.data.as_images`). The same probes on
your images' raw pixels are the reference row, as in every trajectory table.

    >>> from ldae_lite.own_images import probe_images
    >>> probe_images("predict_image", my_images, my_labels, budget="smoke", dataset="fashion-mnist")  # doctest: +SKIP
    {'linear': ..., 'knn': ..., 'raw_pixels': {'linear': ..., 'knn': ...}, ...}
"""

from __future__ import annotations

import time

import torch.nn.functional as F

from . import budgets as budgets_mod
from . import data as data_mod
from . import probe as probe_mod
from . import recipes, validate
from .experiment import encoder_features, load_model, probe_t, recipe_label, run_folder


def probe_images(step_or_recipe, images, labels, *, test_images=None, test_labels=None, budget=None,
                 dataset=None, seed: int = 0, test_fraction: float = data_mod.TEST_FRACTION,
                 pixels: bool = True, device=None, progress: bool = True) -> dict:
    """Linear probe and kNN (top-1, %) of a trained run's encoder on your images.

    step_or_recipe: a trajectory step's key (``"predict_image"``, l-DAE), a :class:`~ldae_lite.recipes.Step` or a
    :class:`~ldae_lite.recipes.Recipe`. images, labels: (N, C, H, W) (or (N, H, W) grey) uint8 or floats in
    [-1, 1], and (N,) integer labels in [0, K). test_images, test_labels: the probe's test split; without
    them ``test_fraction`` of each class is held out by a fixed split (:func:`ldae_lite.data.split_indices`,
    ``seed``). budget, dataset, seed: the run (dataset None: ``$LDAE_DATASET``, the series' dataset).
    pixels: also probe the raw pixels of the same images.

    Returns {linear, knn, base_lr, n_train, n_test, num_classes, t, step, run, dataset, budget, seed,
    raw_pixels: {linear, knn} or None, seconds}.
    """
    recipe, step = _recipe(step_or_recipe)
    budget = budgets_mod.get_budget(budget)
    dataset = data_mod.dataset_name(dataset)
    seed = validate.seed(seed)
    pixels = validate.boolean("pixels", pixels)
    trained_on = data_mod.load(dataset, "train", verbose=False).images  # (N, C, S, S): what the encoder knows
    (x, y), (x_test, y_test) = _splits(images, labels, test_images, test_labels, trained_on.shape[1],
                                       trained_on.shape[-1], test_fraction, seed)
    num_classes = max(int(y.max()), int(y_test.max())) + 1

    _, obj, model = load_model(recipe, budget, dataset, seed, device)  # trains the run first if it is not cached
    start = time.perf_counter()
    dev = next(model.parameters()).device
    t = probe_t(recipe, obj.schedule)
    scale = recipe.resolution_scale
    features = []
    for part in (x, x_test):
        if scale != 1:  # the run sees its images upsampled (Fig. 5), as builders.load_split does
            part = F.interpolate(part, scale_factor=scale, mode="bilinear", align_corners=False)
        features.append(encoder_features(model, obj, obj.prepare(part.to(dev)), t))  # (N, width)
    out = dict(step=step, run=run_folder(recipe, budget, dataset, seed).name, dataset=dataset, budget=budget.name,
               seed=seed, t=t, num_classes=num_classes, n_train=len(y), n_test=len(y_test))
    out.update(_probes(*features, y, y_test, num_classes, budget, seed, progress))
    raw = None
    if pixels:
        raw = _probes(probe_mod.raw_pixel_features(x), probe_mod.raw_pixel_features(x_test), y, y_test, num_classes,
                      budget, seed, progress=False)
        raw = {"linear": raw["linear"], "knn": raw["knn"]}
    out.update(raw_pixels=raw, seconds=time.perf_counter() - start)
    if progress:
        pixel_text = "" if raw is None else f"; raw pixels {raw['linear']:.2f}% / {raw['knn']:.2f}%"
        print(f"{step} trained on {dataset}, probed on your {len(y)}/{len(y_test)} images: linear probe "
              f"{out['linear']:.2f}%, kNN {out['knn']:.2f}%{pixel_text}")
    return out


def _recipe(step_or_recipe) -> tuple[recipes.Recipe, str]:
    """(recipe, its name): a step's key names itself, a recipe is named by :func:`recipe_label`."""
    if isinstance(step_or_recipe, str):
        step_or_recipe = recipes.get_step(step_or_recipe)
    if isinstance(step_or_recipe, recipes.Step):
        return step_or_recipe.recipe, step_or_recipe.key
    if isinstance(step_or_recipe, recipes.Recipe):
        return step_or_recipe, recipe_label(step_or_recipe)
    raise TypeError(f"step_or_recipe must be a trajectory step's key (one of {tuple(recipes.STEPS)}), a Step or a "
                    f"Recipe, got {step_or_recipe!r} ({type(step_or_recipe).__name__})")


def _splits(images, labels, test_images, test_labels, channels: int, size: int, test_fraction, seed: int):
    """((train images, labels), (test images, labels)): checked, converted to the run's channels and size,
    split by :func:`ldae_lite.data.split_indices` when no test split is given."""
    where = "probe_images"
    x = data_mod.as_images(images, f"{where}: images", size, channels)
    y = data_mod.as_labels(labels, f"{where}: labels")
    data_mod.check_lengths(x, y, where)
    if (test_images is None) != (test_labels is None):
        raise ValueError(f"{where}: give both test_images and test_labels, or neither (then {test_fraction} of each "
                         f"class is held out)")
    if len(y.unique()) < 2:
        raise ValueError(f"{where}: every label is {int(y[0])}; a probe needs images of at least two classes")
    if test_images is None:
        train_idx, test_idx = data_mod.split_indices(y, test_fraction, seed, where)
        return (x[train_idx], y[train_idx]), (x[test_idx], y[test_idx])
    x_test = data_mod.as_images(test_images, f"{where}: test images", size, channels)
    y_test = data_mod.as_labels(test_labels, f"{where}: test labels")
    data_mod.check_lengths(x_test, y_test, f"{where}: test split")
    return (x, y), (x_test, y_test)


def _probes(f_train, f_test, y, y_test, num_classes: int, budget, seed: int, progress: bool) -> dict:
    """{linear, knn, base_lr} of features, with the budget's probe epochs (the run's own probe settings)."""
    lin = probe_mod.linear_probe(f_train, y, f_test, y_test, epochs=budget.probe_epochs, num_classes=num_classes,
                                 seed=seed, verbose=progress)
    knn = probe_mod.knn_probe(f_train, y, f_test, y_test, k=min(probe_mod.KNN_K, len(f_train)))
    return {"linear": lin.accuracy, "knn": knn, "base_lr": lin.base_lr}
