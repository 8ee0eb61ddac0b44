"""Probing a trained denoiser again, other ways than ``experiment.run`` does: with the encoder at other t
and on noisy input, with the features taken after other blocks (§4), and how much a class-conditional
denoiser leans on its label (§4.1).

Everything here reuses the runs of :mod:`ldae_lite.experiment`: the model comes from
``experiment.load_model`` (trained first only if it is not cached), the probe is the one ``run()`` uses
(``linear_probe`` on ``encoder_features``), and the small tables computed here are stored as JSON in
the run's own folder (``runs/denoisers/<run>/analysis.json``), so a notebook re-opened later shows them
without recomputing.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from . import budgets as budgets_mod
from . import device as device_mod
from . import experiment, noise, validate
from . import probe as probe_mod
from .batching import batched
from .builders import NUM_CLASSES
from .cache import claim_run, read_record, run_folder, write_json
from .recipes import Recipe

ANALYSIS_VERSION = 2  # bump when a change here alters a cached number (2: the lr-choosing probe)
FIXED_TS = (0, 10, 20, 40, 80)  # the paper's fixed-t table (docs/paper.md §4)


# --------------------------------------------------------------------------------------------------
# the probe at other t and other depths, with run()'s protocol, cached next to the run
# --------------------------------------------------------------------------------------------------
def _cache_path(recipe, budget, dataset, seed) -> Path:
    return run_folder(recipe, budget, dataset, seed) / "analysis.json"


def _read_cache(path: Path) -> dict:
    """The run's analysis.json, or an empty one when it is missing, corrupted, of an older version, or holds
    a table that is not {key: accuracy} (warned, naming the file and the field)."""
    stored = read_record(path, {"version": int}, "probing again")
    if stored is None or stored["version"] != ANALYSIS_VERSION:
        return {"version": ANALYSIS_VERSION}
    tables = {name: {key: float for key in table} if isinstance(table, dict) else {}
              for name, table in stored.items() if name != "version"}
    problems = validate.record(stored, tables)
    if problems:
        warnings.warn(f"{path}: {problems[0]}; probing again", stacklevel=3)
        return {"version": ANALYSIS_VERSION}
    return stored


def _cached_probes(recipe, budget, dataset, seed, section: str, keys, compute, progress: bool) -> dict[int, float]:
    """{key: accuracy} for ``keys``, reading section of analysis.json and computing only what is missing."""
    budget = budgets_mod.get_budget(budget)
    path = _cache_path(recipe, budget, dataset, seed)
    claim_run(path.parent)  # in a fresh session, before reading: what it held is probed again
    stored = _read_cache(path)
    have = stored.get(section, {})
    missing = [k for k in keys if str(k) not in have]
    if missing:
        have.update({str(k): acc for k, acc in compute(missing).items()})
        stored[section] = have
        write_json(path, stored)
    elif progress:
        print(f"reusing cached probes ({section}) from {path.parent.name}/{path.name}")
    return {k: float(have[str(k)]) for k in keys}


def _check_ts(ts) -> tuple[int, ...]:
    """ts as ints; ValueError naming those outside the schedule's steps [0, T)."""
    ts = tuple(int(t) for t in ts)
    bad = [t for t in ts if not 0 <= t < noise.T]
    if bad:
        raise ValueError(f"ts={bad} must lie in [0, {noise.T}) (the schedule's steps)")
    return ts


def _noised(obj, rows: torch.Tensor, t: int, gen: torch.Generator) -> torch.Tensor:
    """rows with the latent part replaced by z_t (eq. 1, the objective's own schedule); image part kept."""
    z0, x0 = obj.split(rows)
    eps = torch.randn(z0.shape, generator=gen).to(z0.device)
    zt = obj.schedule.add_noise(z0, torch.full((len(z0),), t, dtype=torch.long, device=z0.device), eps)
    return torch.cat([zt, x0], -1) if x0 is not None else zt


def probe_at_t(recipe: Recipe, budget=None, dataset: str = "fashion-mnist", seed: int = 0, ts=FIXED_TS,
               noisy: bool = False, *, progress: bool = True, device=None) -> dict[int, float]:
    """{t: linear-probe accuracy %} of the trained run, with the encoder conditioned on each fixed t (§4).

    noisy=False: clean input (run()'s probe, at other t); noisy=True: train and test inputs noised at
    that t with the objective's schedule (noise seeded by ``seed`` and t).
    """
    budget = budgets_mod.get_budget(budget)
    ts = _check_ts(ts)

    def compute(missing):
        dev = device or device_mod.get_device(verbose=False)
        obj, model, rows, y, test_rows, test_y = experiment.probe_data(recipe, budget, dataset, seed, dev)
        accs = {}
        for t in missing:
            train_in, test_in = rows, test_rows
            if noisy:
                gen = torch.Generator().manual_seed(1_000_003 * seed + t)
                train_in, test_in = _noised(obj, rows, t, gen), _noised(obj, test_rows, t, gen)
            f_train = experiment.encoder_features(model, obj, train_in, t)
            f_test = experiment.encoder_features(model, obj, test_in, t)
            accs[t] = probe_mod.linear_probe(f_train, y, f_test, test_y, epochs=budget.probe_epochs,
                                             verbose=False).accuracy
            if progress:
                print(f"t = {t:3d}, {'noisy' if noisy else 'clean'} input: linear probe {accs[t]:.2f}%")
        return accs

    return _cached_probes(recipe, budget, dataset, seed, "noisy_t" if noisy else "clean_t", ts, compute, progress)


def probe_by_depth(recipe: Recipe, budget=None, dataset: str = "fashion-mnist", seed: int = 0, depths=None, *,
                   progress: bool = True, device=None) -> dict[int, float]:
    """{k: linear-probe accuracy %} with the features taken after block k (0 = the patch embedding alone)
    instead of after the encoder's depth // 2 blocks: the paper's encoder/decoder split table (§4)."""
    budget = budgets_mod.get_budget(budget)
    depths = tuple(range(budget.depth + 1)) if depths is None else tuple(int(k) for k in depths)
    bad = [k for k in depths if not 0 <= k <= budget.depth]
    if bad:
        raise ValueError(f"depths={bad} must lie in [0, {budget.depth}] (the budget's model has {budget.depth} "
                         "blocks)")

    def compute(missing):
        dev = device or device_mod.get_device(verbose=False)
        obj, model, rows, y, test_rows, test_y = experiment.probe_data(recipe, budget, dataset, seed, dev)
        t = experiment.probe_t(recipe, obj.schedule)
        accs = {}
        for k in missing:
            f_train = experiment.encoder_features(model, obj, rows, t, depth=k)
            f_test = experiment.encoder_features(model, obj, test_rows, t, depth=k)
            accs[k] = probe_mod.linear_probe(f_train, y, f_test, test_y, epochs=budget.probe_epochs,
                                             verbose=False).accuracy
            if progress:
                print(f"features after block {k} of {budget.depth}: linear probe {accs[k]:.2f}%")
        return accs

    return _cached_probes(recipe, budget, dataset, seed, "depth", depths, compute, progress)


def encoder_probes(recipe: Recipe, budget=None, dataset: str = "fashion-mnist", seed: int = 0,
                   ts=FIXED_TS) -> dict:
    """The trained run's probes at each fixed t (clean and noisy input) and after each block, in one process
    (they share the run's analysis file): {"clean_t": {t: %}, "noisy_t": {t: %}, "depth": {k: %}}."""
    return dict(clean_t=probe_at_t(recipe, budget, dataset, seed, ts, progress=False),
                noisy_t=probe_at_t(recipe, budget, dataset, seed, ts, noisy=True, progress=False),
                depth=probe_by_depth(recipe, budget, dataset, seed, progress=False))


# --------------------------------------------------------------------------------------------------
# §4.1: how much does a class-conditional denoiser lean on its label?
# --------------------------------------------------------------------------------------------------
LABEL_TS = (100, 300, 500, 700, 900)


def between_class_share(z0: torch.Tensor, labels: torch.Tensor) -> float:
    """Share (%) of the variance of clean latents z0 (N, ...) that the class means explain.

    When the noisy input says nothing (t -> T), the best estimate of z0 is the mean of the data, and with
    the label, the mean of its class: the label then removes exactly this share of the squared error."""
    if len(z0) != len(labels) or len(z0) < 2:
        raise ValueError(f"z0 has {len(z0)} rows and labels {len(labels)}; expected the same number, >= 2")
    z = z0.reshape(len(z0), -1).double()
    total = (z - z.mean(0)).pow(2).sum()
    within = sum((z[labels == c] - z[labels == c].mean(0)).pow(2).sum() for c in labels.unique())
    return float(100 * (1 - within / total))


def label_use(recipe: Recipe, budget=None, dataset: str = "fashion-mnist", seed: int = 0, ts=LABEL_TS,
              n: int = 2000, *, device=None) -> dict:
    """The trained class-conditional run's denoising error on n test images at each t, given the true
    label, the null label (what the probe feeds it) and a wrong label, with the same noise for all three.

    Returns dict(t, true, null, wrong: lists of mean squared errors (the training loss before lambda_t),
    gain: the % of the null-label error that the true label removes, 100 (1 - true / null), and
    pure_noise: :func:`between_class_share` of the clean latents, what the label is worth to the best
    denoiser when its input says nothing; at intermediate t it can be worth more or less).
    At a fixed t the error of every target (noise, clean latent) is the same multiple of the clean-latent
    error, so gain reads the same whatever the recipe predicts. A gain near 0 means the network has not
    learned to use its label: it then cannot leave class information to the label, which is the paper's
    explanation of why removing class conditioning helps the probe (§4.1).
    """
    if not recipe.class_cond:
        raise ValueError("label_use needs a class-conditional recipe (class_cond=True); this one has no label input")
    if recipe.mask_ratio > 0:
        raise ValueError(f"label_use measures denoising; mask_ratio={recipe.mask_ratio} masks instead")
    ts = _check_ts(ts)
    if n < 2:
        raise ValueError(f"n={n} must be >= 2")
    budget = budgets_mod.get_budget(budget)
    dev = device or device_mod.get_device(verbose=False)
    _, obj, model = experiment.load_model(recipe, budget, dataset, seed, dev)  # trains it if not cached
    with torch.no_grad():
        return _label_use(obj, model, dataset, budget, recipe, seed, ts, n, dev)


def _label_use(obj, model, dataset, budget, recipe, seed, ts, n, dev) -> dict:
    images, labels = experiment.load_split(dataset, "test", budget, recipe.resolution_scale)
    rows, y = obj.prepare(images[:n].to(dev)), labels[:n].to(dev)
    gen = torch.Generator().manual_seed(seed)
    k = NUM_CLASSES
    wrong = (y + torch.randint(1, k, y.shape, generator=gen).to(dev)) % k  # never the true class
    null = None  # the null label for every image: the DiT takes labels in [0, k) only
    z0, _ = obj.split(rows)
    out = dict(t=list(ts), true=[], null=[], wrong=[], gain=[], pure_noise=between_class_share(z0.cpu(), y.cpu()))
    for t in ts:
        eps = torch.randn(z0.shape, generator=gen).to(dev)
        steps = torch.full((len(y),), t, dtype=torch.long, device=dev)
        for name, lab in (("true", y), ("null", null), ("wrong", wrong)):
            out[name].append(_mean_error(obj, model, rows, steps, eps, lab, dev))
        out["gain"].append(100 * (1 - out["true"][-1] / out["null"][-1]))
    return out


def _mean_error(obj, model, rows, steps, eps, labels, dev, batch_size: int = 500) -> float:
    """The denoiser's squared error (Objective.error) averaged over all n rows, batch_size at a time."""
    def error(i: torch.Tensor) -> torch.Tensor:  # (B,) row indices -> (B,) per-sample errors
        with device_mod.autocast(dev):
            return obj.error(model, rows[i], steps[i], eps[i], None if labels is None else labels[i])

    return float(batched(error, torch.arange(len(rows), device=dev), batch_size).float().mean())
