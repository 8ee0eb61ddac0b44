"""What limits l-DAE at the lecture budget: the probe, the training, the dataset, the label, the noise levels.

Every number in the README's "what limits the effects" table comes from here. Runs are trained through
``experiment.run`` and so are cached under ``runs/`` (a second call only probes again); the table is
written to ``results/<budget>/levers.json`` and ``levers.md`` with the command, commit, device and time.

    .venv/bin/python scripts/levers.py                   # lecture budget, seed 0 (~4 min when cached;
                                                         #  89 runs, ~5.4 h on one CPU thread, when nothing is)
    .venv/bin/python scripts/levers.py --budget smoke    # seconds: checks that it runs

Rows:
1. the probe: one l-DAE, its frozen features probed with each fixed base lr of ``probe.LR_GRID``, and
   with the lr chosen on held-out training features (what every other number uses); the same l-DAE
   probed after each of its blocks (the paper probes after the first half, 12 of 24; Tab. 3 of its
   App. A sweeps 9-15); raw pixels and l-DAE probed for 30 epochs, against the budget's 90 (MAE's);
2. the training: l-DAE with a larger denoiser lr, and with 2x and 4x the optimizer steps;
3. the dataset: Fashion-MNIST-M (each garment blended into a photo crop), where raw pixels are weak:
   raw pixels, the pixel-space DAE, l-DAE.
4. whitening: on Fashion-MNIST-M, steps 11 and 12 (image input, then image output, through inverse PCA)
   with whitened PCA latents, as the trajectory has them, and with the paper's orthonormal V.
5. the label: the DiT baseline (class-conditional) and the step that removes its label, at the budget's
   steps and at 4x (at 4x: seeds seed, seed + 1, seed + 2), with how much of the denoising
   error the baseline's label removes (``analysis.label_use``);
6. noise levels: l-DAE with one noise level against multi-level noise, at the budget's steps, at 4x,
   with the paper's orthonormal V instead of whitened PCA latents, and trained on 3000 images only; the
   single-level model probed at multi-level's t = 10 instead of its own t; and over seeds seed, seed + 1,
   seed + 2 with the single level at sqrt(1/3) and at 1/3 (the two readings of the paper's text), at the
   budget's steps on both datasets and at 4x on Fashion-MNIST-M;
7. 4x: on Fashion-MNIST-M, the new noise schedule (step 4 -> 5) and predicting clean data (step 8 -> 9)
   at 4x the steps, seeds seed, seed + 1, seed + 2;
8. the latent dimension (the inverted U of Tab. 2): the patch-PCA step at d = 2 ... 64, on Fashion-MNIST
   (seed) and Fashion-MNIST-M (seeds seed, seed + 1, seed + 2), each d against the trajectory's d = 16.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ldae_lite import analysis, budgets, cache, device, experiment, levers, probe, recipes  # noqa: E402
from ldae_lite.stats import mean_std  # noqa: E402

FM, FMM = "fashion-mnist", "fashion-mnist-m"


@dataclass
class Levers:
    """The table being measured: its rows, and the changes a step -> the step after it over seeds."""

    budget: budgets.Budget
    seed: int
    rows: list = field(default_factory=list)
    changes: dict = field(default_factory=dict)  # (group, change, dataset, training) -> [(before, after)]
    longer: budgets.Budget = field(init=False)  # 4x the budget's steps
    seeds: tuple = field(init=False)  # the seed and the two after it, for the groups measured over seeds

    def __post_init__(self):
        self.longer = dataclasses.replace(self.budget, steps=4 * self.budget.steps)
        self.seeds = (self.seed, self.seed + 1, self.seed + 2)

    def add(self, group, dataset, what, accuracy, knn=None, train_s=None, note=""):
        self.rows.append(dict(group=group, dataset=dataset, what=what, accuracy=accuracy, knn=knn,
                              train_seconds=train_s, note=note))
        print(f"[{group}] {dataset}: {what}: {accuracy:.2f}%", flush=True)

    def run(self, group, dataset, what, recipe, b=None, s=None, note=""):
        """Train (or reuse) and probe a run, add it as a row; the note defaults to the probe's chosen lr."""
        r = experiment.run(recipe, b or self.budget, dataset, self.seed if s is None else s, progress=False)
        self.add(group, dataset, what, r.probe_accuracy, r.knn_accuracy, r.train_seconds,
                 note or f"probe base lr {r.probe_base_lr:g} (chosen)")
        return r

    def change(self, group, change, dataset, training, before: float, after: float):
        self.changes.setdefault((group, change, dataset, training), []).append((before, after))

    def raw_pixels(self, group, dataset):
        raw = experiment.pixel_baseline(dataset, self.budget, self.seed, progress=False)
        self.add(group, dataset, "raw pixels", raw["linear"], raw["knn"], None,
                 f"probe base lr {raw['base_lr']:g} (chosen)")
        return raw


def frozen_features(recipe, budget, dataset, seed, depths=(None,)):
    """A run's frozen probe features after each of ``depths`` blocks (None: the encoder), as the run probes
    them: {depth: (train features, train labels, test features, test labels)}. Loads and encodes once."""
    obj, model, train_rows, train_y, test_rows, test_y = experiment.probe_data(recipe, budget, dataset, seed)
    t = experiment.probe_t(recipe, obj.schedule)
    return {depth: (experiment.encoder_features(model, obj, train_rows, t, depth=depth), train_y,
                    experiment.encoder_features(model, obj, test_rows, t, depth=depth), test_y)
            for depth in depths}


def probe_lrs(features, epochs, base_lrs):
    """Frozen features probed at each fixed base lr: {base lr: test top-1 %}."""
    f_train, y_train, f_test, y_test = features
    return {base: probe.linear_probe(f_train, y_train, f_test, y_test, epochs=epochs,
                                     lr=base * min(probe.BATCH_SIZE, len(f_train)) / 256, verbose=False).accuracy
            for base in base_lrs}


def chosen_probe(features, epochs):
    """The probe every run uses (lr chosen on held-out training features), at ``epochs``."""
    return probe.linear_probe(*features, epochs=epochs, verbose=False)


def raw_features(dataset, budget):
    train_x, train_y = experiment.load_split(dataset, "train", budget)
    test_x, test_y = experiment.load_split(dataset, "test", budget)
    n = budget.probe_train or len(train_x)
    return (probe.raw_pixel_features(train_x[:n]), train_y[:n].cpu(), probe.raw_pixel_features(test_x),
            test_y)


def _number(key) -> int:
    """The trajectory step number (1-13) of a step key."""
    return [s.key for s in recipes.TRAJECTORY].index(key) + 1


# --------------------------------------------------------------------------------------------------
# the groups, in the table's order
# --------------------------------------------------------------------------------------------------
def the_probe(t: Levers):
    """1. One l-DAE's frozen features: each fixed probe lr, each block, 30 against 90 probe epochs.
    Returns (raw-pixel baseline, the l-DAE run)."""
    budget = t.budget
    raw = t.raw_pixels("baseline", FM)
    ldae = t.run("probe", FM, "l-DAE, lr chosen on held-out training features", recipes.LDAE)
    encoder = budget.depth // 2  # DiT.encoder_depth: the first half of the blocks
    by_depth = frozen_features(recipes.LDAE, budget, FM, t.seed, depths=range(1, budget.depth + 1))
    features = by_depth[encoder]
    for base, acc in probe_lrs(features, budget.probe_epochs, probe.LR_GRID).items():
        t.add("probe", FM, f"l-DAE, fixed probe base lr {base:g}", acc, note="the same frozen features" +
              ("; the probe of earlier versions" if base == 0.03 else ""))
    for depth, feats in by_depth.items():
        r = chosen_probe(feats, budget.probe_epochs)
        t.add("probe", FM, f"l-DAE, probed after block {depth} of {budget.depth}", r.accuracy,
              note=f"train {r.train_accuracy:.2f}; " + ("the encoder (the paper's half)" if depth == encoder
                                                         else "the same model"))
    # the probe's length: the budget's (MAE's 90 at lecture) against the other of 30 and 90
    other = 30 if budget.probe_epochs != 30 else 90
    what_other = {30: "30 probe epochs (the lecture probe of earlier versions)", 90: "90 probe epochs (MAE's)"}[other]
    for what, feats in (("raw pixels", raw_features(FM, budget)), ("l-DAE", features)):
        r = chosen_probe(feats, other)
        t.add("probe", FM, f"{what}, {what_other}", r.accuracy,
              note=f"train {r.train_accuracy:.2f}; probe base lr {r.base_lr:g} (chosen)")
    return raw, ldae


def the_training(t: Levers):
    """2. l-DAE with a larger denoiser lr, and with 2x and 4x the optimizer steps."""
    budget = t.budget
    for what, change in ((f"l-DAE, denoiser lr {2 * budget.lr:g}", dict(lr=2 * budget.lr)),
                         (f"l-DAE, denoiser lr {3 * budget.lr:g}", dict(lr=3 * budget.lr)),
                         (f"l-DAE, {2 * budget.steps} steps (2x the training)", dict(steps=2 * budget.steps)),
                         (f"l-DAE, {4 * budget.steps} steps (4x the training)", dict(steps=4 * budget.steps))):
        t.run("training", FM, what, recipes.LDAE, dataclasses.replace(budget, **change))


def the_dataset(t: Levers):
    """3. Fashion-MNIST-M: raw pixels, the pixel-space DAE, l-DAE. Returns (raw-pixel baseline, l-DAE run)."""
    raw = t.raw_pixels("dataset", FMM)
    t.run("dataset", FMM, "pixel-space DAE", recipes.PIXEL_DAE)
    return raw, t.run("dataset", FMM, "l-DAE", recipes.LDAE)


def whitening(t: Levers):
    """4. Steps 11 and 12 on Fashion-MNIST-M with whitened PCA latents (ours) and the paper's orthonormal V."""
    for key in ("image_input", "image_output"):
        for whiten, what in ((True, "whitened PCA latent (ours)"), (False, "orthonormal V (the paper's)")):
            t.run("whitening", FMM, f"step {_number(key)} ({recipes.STEPS[key].label}), {what}",
                  dataclasses.replace(recipes.STEPS[key].recipe, pca_whiten=whiten))


def the_label(t: Levers):
    """5. Does the baseline use its label, and does removing it help, at the budget and at 4x (3 seeds)?"""
    base, no_label = recipes.STEPS["dit_baseline"].recipe, recipes.STEPS["no_class_cond"].recipe
    for dataset in (FM, FMM):
        for b, length in ((t.budget, f"{t.budget.steps} steps"), (t.longer, f"{t.longer.steps} steps (4x)")):
            for s in (t.seeds if b is t.longer else (t.seed,)):
                use = analysis.label_use(base, b, dataset, s)
                mid = use["t"].index(500)
                r1 = t.run("label", dataset, f"DiT baseline (class-conditional), {length}, seed {s}", base, b, s,
                           f"its label removes {use['gain'][mid]:.1f}% of the error at t = 500 (largest over "
                           f"t = {', '.join(map(str, use['t']))}: {max(use['gain']):.1f}%); the class means "
                           f"explain {use['pure_noise']:.1f}% of the latent variance")
                r2 = t.run("label", dataset, f"remove class conditioning, {length}, seed {s}", no_label, b, s)
                t.change("label", "remove class conditioning", dataset, length, r1.probe_accuracy, r2.probe_accuracy)


def noise_levels(t: Levers):
    """6. One noise level against many, on both datasets: four one-seed settings, then over three seeds."""
    for dataset in (FM, FMM):
        _noise_levels_one_seed(t, dataset)
        _noise_levels_over_seeds(t, dataset)


def _noise_levels_one_seed(t: Levers, dataset: str):
    """At the budget, at 4x, with the paper's orthonormal V, and on few images seen many times (the paper
    reads multi-level noise as a data augmentation); at the budget also probed at multi-level's t."""
    budget, seed = t.budget, t.seed
    orthonormal, few = dict(pca_whiten=False), dataclasses.replace(budget, train_subset=3000)
    epochs = few.steps * few.batch_size / few.train_subset
    for b, what, change in ((budget, f"{budget.steps} steps", {}),
                            (t.longer, f"{t.longer.steps} steps (4x)", {}),
                            (budget, f"{budget.steps} steps, orthonormal V (the paper's)", orthonormal),
                            (few, f"{few.steps} steps on {few.train_subset} training images ({epochs:.0f} "
                                  "epochs; the probe too sees only those)", {})):
        multi = t.run("noise levels", dataset, f"l-DAE (multi-level noise), {what}",
                      dataclasses.replace(recipes.LDAE, **change), b)
        single = experiment.run(dataclasses.replace(recipes.SINGLE_NOISE, **change), b, dataset, seed,
                                progress=False)
        t.add("noise levels", dataset, f"single noise level, {what}", single.probe_accuracy, single.knn_accuracy,
              single.train_seconds, f"{single.probe_accuracy - multi.probe_accuracy:+.2f} against multi-level")
        if b is budget and not change:  # the probe's t: its own (experiment.probe_t), or multi-level's
            pt = experiment.PROBE_T
            acc = analysis.probe_at_t(recipes.SINGLE_NOISE, b, dataset, seed, ts=(pt,), progress=False)[pt]
            t.add("noise levels", dataset, f"single noise level, {what}, probed at t = {pt} (multi-level's "
                  "probe t, a t it never saw in training)", acc,
                  note=f"{acc - multi.probe_accuracy:+.2f} against multi-level")


def _noise_levels_over_seeds(t: Levers, dataset: str):
    """Over three seeds, with the single level the paper's text most likely means (sqrt(1/3), the rows of
    :func:`_noise_levels_one_seed`) and its other reading, 1/3 (noise.SINGLE_SIGMAS); at 4x on
    Fashion-MNIST-M only."""
    for b, length in ((t.budget, f"{t.budget.steps} steps"), (t.longer, f"{t.longer.steps} steps (4x)")):
        if b is t.longer and dataset != FMM:
            continue
        multis = {s: experiment.run(recipes.LDAE, b, dataset, s, progress=False) for s in t.seeds}
        for levels, sigma in (("single", "σ = √(1/3)"), ("single_1/3", "σ = 1/3")):
            for s, multi in multis.items():
                single = experiment.run(dataclasses.replace(recipes.LDAE, noise_levels=levels), b, dataset, s,
                                        progress=False)
                if not (levels == "single" and s == t.seed):  # that one has its row already
                    t.add("noise levels", dataset, f"single noise level {sigma}, {length}, seed {s}",
                          single.probe_accuracy, single.knn_accuracy, single.train_seconds,
                          f"{single.probe_accuracy - multi.probe_accuracy:+.2f} against multi-level "
                          f"({multi.probe_accuracy:.2f}, seed {s})")
                t.change("noise levels", f"single noise level {sigma} (from multi-level)", dataset, length,
                         multi.probe_accuracy, single.probe_accuracy)


def four_x(t: Levers):
    """7. The new noise schedule (step 4 -> 5) and predicting clean data (step 8 -> 9) at 4x the steps on
    Fashion-MNIST-M, where the label's effect appeared; three seeds."""
    longer = t.longer
    for before, after in (("no_adversarial", "linear_gamma2"), ("patch_pca", "predict_x0")):
        for s in t.seeds:
            r1, r2 = (t.run("4x", FMM, f"step {_number(k)} ({recipes.STEPS[k].label}), {longer.steps} steps (4x), "
                            f"seed {s}", recipes.STEPS[k].recipe, longer, s) for k in (before, after))
            t.change("4x", recipes.STEPS[after].label, FMM, f"{longer.steps} steps (4x)", r1.probe_accuracy,
                     r2.probe_accuracy)


def latent_dim(t: Levers, dims=(2, 4, 8, 16, 32, 64)):
    """8. The inverted U of Tab. 2: the patch-PCA step at each d, one seed on Fashion-MNIST and three on
    Fashion-MNIST-M; each d against the trajectory's d = 16."""
    budget, sweep = t.budget, recipes.tokenizer_sweep("patch_pca", dims)
    for dataset, ds_seeds in ((FM, (t.seed,)), (FMM, t.seeds)):
        big_d = experiment.get_tokenizer(sweep[16], budget, dataset, t.seed, progress=False).patch_dim
        by_d = {d: [experiment.run(sweep[d], budget, dataset, s, progress=False) for s in ds_seeds] for d in dims}
        for d, runs in by_d.items():
            accs = [r.probe_accuracy for r in runs]
            mean, std = mean_std(accs)
            note = "the trajectory's d (step 8)" if d == 16 else ""
            if std is not None:
                note = (f"mean ± std {mean:.2f} ± {std:.2f} over seeds {', '.join(map(str, ds_seeds))}: "
                        f"{', '.join(f'{a:.2f}' for a in accs)}" + (f"; {note}" if note else ""))
            t.add("latent dim", dataset, f"patch PCA, d = {d} of D = {big_d}",
                  mean, mean_std([r.knn_accuracy for r in runs])[0], sum(r.train_seconds for r in runs), note)
            if d != 16:
                for before, after in zip([r.probe_accuracy for r in by_d[16]], accs):
                    t.change("latent dim", f"patch PCA d = 16 -> d = {d}", dataset, f"{budget.steps} steps",
                             before, after)


# --------------------------------------------------------------------------------------------------
# the whole table
# --------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", default="lecture", choices=tuple(budgets.BUDGETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for levers.json/.md (default results/<budget>)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    t = Levers(budgets.get_budget(args.budget), args.seed)
    raw, ldae = the_probe(t)
    the_training(t)
    raw_m, ldae_m = the_dataset(t)
    whitening(t)
    the_label(t)
    noise_levels(t)
    four_x(t)
    latent_dim(t)
    command = "python scripts/levers.py " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = _meta(t, command, time.perf_counter() - start,
                 {FM: ldae.probe_accuracy - raw["linear"], FMM: ldae_m.probe_accuracy - raw_m["linear"]})
    out = Path(args.out) if args.out else ROOT / "results" / t.budget.name
    cache.write_json(out / "levers.json", dict(meta=meta, rows=t.rows))
    text = levers.to_markdown(meta, t.rows)
    cache.write_text(out / "levers.md", text)
    print("\n" + text + f"written: {out / 'levers.json'}, {out / 'levers.md'}")
    return 0


def _meta(t: Levers, command: str, wall_seconds: float, ldae_minus_raw: dict) -> dict:
    """Where the table comes from, l-DAE minus raw pixels per dataset, and each change over its seeds."""
    dev = device.get_device(verbose=False)
    return dict(budget=t.budget.name, seed=t.seed, device=device.describe(dev), commit=cache.git_commit(),
                created=time.strftime("%Y-%m-%d %H:%M:%S"), wall_seconds=wall_seconds, command=command,
                ldae_minus_raw=ldae_minus_raw,
                changes=[dict(group=g, change=c, dataset=d, training=length, before=[p[0] for p in pairs],
                              after=[p[1] for p in pairs], values=[p[1] - p[0] for p in pairs])
                         for (g, c, d, length), pairs in t.changes.items()])


if __name__ == "__main__":
    sys.exit(main())
