"""The side experiments the notebooks show, on the default dataset and budget, over three seeds.

Beside the 13 steps of the trajectory, the series shows what else moves the probe: the latent dimension d
(notebook 05, Tab. 2), noise on pixels without PCA (05 and 08, Fig. 5), one noise level instead of many,
75% masking instead of noise, the probe's fixed t and the encoder/decoder split (08), and the paper's
orthonormal V (with one global latent scale) instead of our whitened PCA latents (06). This script measures
each at the default pair (``$LDAE_DATASET``, ``$LDAE_BUDGET``: Fashion-MNIST-M at ``lecture``) over seeds 0,
1, 2 and writes ``results/<budget>/side_experiments.json`` and ``.md``, in the levers table's format
(:mod:`ldae_lite.levers`), which the notebooks read where they do not train a side run themselves
(``LIVE_SIDE_RUNS = False``). ``make side`` runs it. Measured: the groups dataset, noise levels, masking,
fixed t and depth (12 runs with their probes, and 51 more probes) took about 90 min from an empty cache on a
2-core machine about half as fast as the one that made the reference (results/README.md); whitening and
latent dim add 15 runs.

    .venv/bin/python scripts/side_experiments.py                  # hours on 2 CPU cores from an empty cache
    .venv/bin/python scripts/side_experiments.py --budget smoke   # seconds: checks that it runs

A call with ``--groups`` keeps the other groups of the table already in the output folder when the same
training code made it (its l-DAE runs must equal this call's, seed by seed), so the table can be built over
several sessions; ``--replace`` writes only the groups measured now.

The runs train two at a time (one process per core, as ``make trajectory``) and land in the run cache, so a
second call only reads them. Rows that are trajectory steps (d = 16 is step 8; the whitened steps 12 and
13) are taken from the shipped trajectory reference of the same dataset and budget when its training code
is this code's, else trained here; the l-DAE runs are trained again either way (the fixed-t and depth
probes need the model), and the table says whether they reproduce the reference.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ldae_lite import analysis, budgets, cache, code_version, data, device, levers, live, recipes, trajectory  # noqa: E402
from ldae_lite.stats import mean_std  # noqa: E402

SEEDS = (0, 1, 2)
DIMS = (4, 8, 32)  # d = 16 is the trajectory's (step 8)
ORTHONORMAL_STEPS = ("image_output", "predict_image")  # steps 12 and 13 with the paper's V
GROUPS = ("dataset", "noise levels", "masking", "whitening", "latent dim", "fixed t", "depth")  # the table's order


def side_runs(seeds, groups=GROUPS, dims=DIMS) -> list[tuple[str, recipes.Recipe, int]]:
    """[(name, recipe, seed)] that ``groups`` need, in the order they are trained (l-DAE first: the fixed-t
    and depth probes wait for it, and every group compares with it)."""
    named = {"l-DAE": recipes.LDAE}
    if "dataset" in groups:
        named["pixel-space DAE"] = recipes.PIXEL_DAE
    if "noise levels" in groups:
        named["single noise level"] = recipes.SINGLE_NOISE
    if "masking" in groups:
        named["75% masking"] = recipes.MASKED_AE
    if "whitening" in groups:
        named |= {f"step {_number(k)}, orthonormal V": dataclasses.replace(recipes.STEPS[k].recipe, pca_whiten=False)
                  for k in ORTHONORMAL_STEPS}
    if "latent dim" in groups:
        named |= {f"patch PCA d = {d}": r for d, r in recipes.tokenizer_sweep("patch_pca", dims).items()}
    return [(name, recipe, s) for name, recipe in named.items() for s in seeds]


def _number(key: str) -> int:
    return [s.key for s in recipes.TRAJECTORY].index(key) + 1


def reference_steps(dataset: str, budget) -> dict[str, list[float]]:
    """{step key: accuracies over SEEDS} of the shipped trajectory reference of this dataset and budget;
    {} when none is shipped over SEEDS. Whether this code made it is checked by training l-DAE again."""
    found = live.reference_report(dataset, budget)  # (path, report) or None
    if found is None or tuple(found[1]["meta"]["seeds"]) != SEEDS:
        return {}
    report = found[1]
    return {row["key"]: row["accuracies"] for row in report["steps"]}


class Table:
    """The rows and changes being written (the levers table's format)."""

    def __init__(self, dataset: str, training: str):
        self.dataset, self.training, self.rows, self.changes = dataset, training, [], []

    def add(self, group: str, what: str, accs: list[float], note: str = "", knns=None, seconds=None):
        mean, std = mean_std(accs)
        spread = (f"mean ± std {mean:.2f} ± {std:.2f} over seeds {', '.join(map(str, SEEDS[:len(accs)]))}: "
                  f"{', '.join(f'{a:.2f}' for a in accs)}") if std is not None else ""
        self.rows.append(dict(group=group, dataset=self.dataset, what=what, accuracy=mean, accuracies=list(accs),
                              knn=None if knns is None else mean_std(knns)[0], train_seconds=seconds,
                              note="; ".join(x for x in (spread, note) if x)))
        print(f"[{group}] {what}: {mean:.2f}%", flush=True)

    def change(self, group: str, change: str, before: list[float], after: list[float]):
        self.changes.append(dict(group=group, change=change, dataset=self.dataset, training=self.training,
                                 before=list(before), after=list(after),
                                 values=[b - a for a, b in zip(before, after)]))


def measure(budget, dataset: str, seeds, workers, dims=None, groups=GROUPS) -> tuple[Table, float, int]:
    """Train what ``groups`` need and is missing, probe, and fill the table. Returns (the table, l-DAE minus
    raw pixels, how many runs were trained here)."""
    ref = reference_steps(dataset, budget)
    dims = DIMS if dims is None else dims
    runs = side_runs(seeds, groups, dims)
    probes = {"fixed t", "depth"} & set(groups)
    after = {f"encoder probes, seed {s}": (analysis.encoder_probes, (recipes.LDAE, budget, dataset, s), {},
                                          (("l-DAE", s),)) for s in seeds} if probes else {}
    out = trajectory.run_many(runs, budget, dataset, workers, after)
    same = ref.get("predict_image")
    reproduced = [out[("l-DAE", s)].probe_accuracy for s in seeds] == same
    wanted = [k for k, group in (("patch_pca", "latent dim"), ("image_output", "whitening")) if group in groups]
    steps = [(f"step {_number(k)}", recipes.STEPS[k].recipe, s) for k in wanted for s in seeds]
    if steps and not reproduced:  # no reference, or made by other code: its steps 8 and 12 are trained here too
        print("the shipped trajectory reference is missing or was made by other code: training steps 8 and 12")
        out |= trajectory.run_many(steps, budget, dataset, workers)
    names = [name for name, _, s in runs + (steps if not reproduced else []) if s == seeds[0]]
    acc = {name: [out[(name, s)].probe_accuracy for s in seeds] for name in names}
    knn = {name: [out[(name, s)].knn_accuracy for s in seeds] for name in names}
    secs = {name: sum(out[(name, s)].train_seconds for s in seeds) for name in names}
    if reproduced:
        acc |= {"step 8": ref["patch_pca"], "step 12": ref["image_output"]}
    ldae, raw = acc["l-DAE"], out["raw"]
    t = Table(dataset, f"{budget.steps} steps of {budget.batch_size}")
    reproduced = ("reproduces the shipped trajectory's step 13 to the digit (so steps 8 and 12 are taken "
                  "from it)" if reproduced else "")

    def row(group, what, name, note=""):
        t.add(group, what, acc[name], note, knn.get(name), secs.get(name))

    t.add("dataset", "raw pixels", [raw["linear"]], f"probe base lr {raw['base_lr']:g} (chosen)", [raw["knn"]])
    row("dataset", "l-DAE", "l-DAE", reproduced)
    t.change("dataset", "raw pixels -> l-DAE", [raw["linear"]] * len(seeds), ldae)
    if "dataset" in groups:
        row("dataset", "pixel-space DAE (noise on pixels, no PCA)", "pixel-space DAE")
        t.change("dataset", "pixel-space DAE -> l-DAE", acc["pixel-space DAE"], ldae)
    if "noise levels" in groups:
        row("noise levels", "l-DAE (multi-level noise)", "l-DAE")
        row("noise levels", "single noise level σ = √(1/3)", "single noise level")
        t.change("noise levels", "single noise level σ = √(1/3) (from multi-level)", ldae, acc["single noise level"])
    if "masking" in groups:
        row("masking", "l-DAE (noise)", "l-DAE")
        row("masking", "75% masking instead of noise (same backbone)", "75% masking")
        t.change("masking", "75% masking (from noise)", ldae, acc["75% masking"])
    for key in ORTHONORMAL_STEPS if "whitening" in groups else ():
        whitened = {"image_output": acc["step 12"], "predict_image": ldae}[key]
        label = f"step {_number(key)} ({recipes.STEPS[key].label})"
        t.add("whitening", f"{label}, whitened PCA latent (ours)", whitened, "the trajectory's")
        row("whitening", f"{label}, orthonormal V and one global scale (pca_whiten=False)",
            f"step {_number(key)}, orthonormal V")
        t.change("whitening", f"{label}: one global scale (from whitened)", whitened,
                 acc[f"step {_number(key)}, orthonormal V"])

    if "latent dim" in groups:
        latent_rows(row, t, acc, dims)
    probe_rows(t, [out[f"encoder probes, seed {s}"] for s in seeds] if probes else [], groups, budget.depth)
    trained = sum(not r.cached for r in out.values() if hasattr(r, "cached"))
    return t, mean_std(ldae)[0] - raw["linear"], trained


def latent_rows(row, t: Table, acc: dict, dims) -> None:
    """The 'latent dim' rows: patch PCA at each d, and each d against the trajectory's (step 8)."""
    big_d = recipes.get_step("patch_pca").recipe.latent_dim  # 16
    for d in sorted((*dims, big_d)):
        name = "step 8" if d == big_d else f"patch PCA d = {d}"
        row("latent dim", f"patch PCA, d = {d}", name, "the trajectory's d (step 8)" if name == "step 8" else "")
        if name != "step 8":
            t.change("latent dim", f"patch PCA d = {big_d} -> d = {d}", acc["step 8"], acc[name])


def probe_rows(t: Table, probes: list[dict], groups, depth: int) -> None:
    """The 'fixed t' and 'depth' rows from each seed's :func:`analysis.encoder_probes`."""
    for ts in analysis.FIXED_TS if "fixed t" in groups else ():
        for kind in ("clean", "noisy"):
            t.add("fixed t", f"probe at t = {ts}, {kind} input", [p[f"{kind}_t"][ts] for p in probes],
                  "run()'s probe" if (ts, kind) == (10, "clean") else "")
    for k in range(depth + 1) if "depth" in groups else ():
        t.add("depth", f"features after block k = {k} of {depth}", [p["depth"][k] for p in probes],
              "the encoder (the first half)" if k == depth // 2 else "")


def measured_groups(shipped: dict) -> list[str]:
    """The groups a side_experiments.json measured (its meta says; a table written before it did: those with
    rows, 'dataset' always has some)."""
    return shipped["meta"].get("groups") or [g for g in GROUPS if any(r["group"] == g for r in shipped["rows"])]


def merge(table: Table, groups, previous: dict | None, budget) -> tuple[list[str], str]:
    """Add to ``table`` the groups that ``previous`` (the side_experiments.json already in the output folder)
    measured and this call did not, so that a table is built over several calls (``--groups``). Only a table of
    the same budget, dataset and training code whose l-DAE rows equal this call's, seed by seed, is merged;
    otherwise it is left out, and the reason printed. Returns (the groups now measured, a note for the meta)."""
    if previous is None:
        return list(groups), ""
    meta, rows = previous["meta"], previous["rows"]
    why = _not_mergeable(previous, table, budget)
    kept = [g for g in measured_groups(previous) if g not in groups]
    if why or not kept:
        print(f"the table already in the output folder is replaced{': ' + why if why else ''}", flush=True)
        return list(groups), ""
    order = {g: i for i, g in enumerate(GROUPS)}
    mine_rows = [r for r in table.rows if r["group"] not in kept]
    table.rows = sorted(mine_rows + [r for r in rows if r["group"] in kept], key=lambda r: order[r["group"]])
    table.changes = sorted([c for c in table.changes if c["group"] not in kept] +
                           [c for c in meta["changes"] if c["group"] in kept], key=lambda c: order[c["group"]])
    print(f"kept from the table already there: {', '.join(kept)}", flush=True)
    return [g for g in GROUPS if g in groups or g in kept], (
        f"the groups {', '.join(kept)} are from `{meta['command']}` (commit `{meta['commit']}`, {meta['created']}, "
        f"{meta.get('wall_seconds', 0) / 60:.1f} min), whose l-DAE runs equal this call's seed by seed")


def _not_mergeable(previous: dict, table: Table, budget) -> str:
    """Why ``previous`` cannot be merged with ``table`` ('' when it can)."""
    meta, rows = previous["meta"], previous["rows"]
    if meta["budget"] != budget.name:
        return f"its budget is {meta['budget']}, this call's {budget.name}"
    mine = code_version.training_code_hash()
    if meta.get("training_code_hash") != mine:
        return f"it was made by training code {meta.get('training_code_hash')}, this is {mine}"
    if {r["dataset"] for r in rows} != {table.dataset}:
        return f"its dataset is not {table.dataset}"
    ldae = [[r["accuracies"] for r in t if r["what"] == "l-DAE"] for t in (rows, table.rows)]
    return "its l-DAE runs differ from this call's" if ldae[0] != ldae[1] else ""


def save(table: Table, gap: float, trained: int, budget, out: Path, command: str, wall_seconds: float,
         groups=GROUPS, merged: str = "") -> Path:
    """Write the table as ``out``/side_experiments.json and .md (the levers table's format); returns the JSON's
    path. A table of fewer than all GROUPS says which are still to be measured; ``merged`` (from :func:`merge`)
    says which groups came from an earlier call."""
    missing = [g for g in GROUPS if g not in groups]
    notes = ([f"groups still to be measured: {', '.join(missing)} (`--groups`)"] if missing else []) + \
        ([merged] if merged else []) + \
        (["every run was read from the run cache: the wall time is that of reading and probing"] if not trained else [])
    meta = dict(**({"note": "; ".join(notes)} if notes else {}), groups=[g for g in GROUPS if g in groups],
                budget=budget.name, label=budgets.label(budget),
                seed=SEEDS[0],
                device=device.describe(device.get_device(verbose=False)), commit=cache.git_commit(),
                training_code_hash=code_version.training_code_hash(), created=time.strftime("%Y-%m-%d %H:%M:%S"),
                wall_seconds=wall_seconds, runs_trained=trained, command=command.strip(),
                ldae_minus_raw={table.dataset: gap}, changes=table.changes)
    path = Path(out) / levers.SIDE_FILE
    cache.write_json(path, dict(meta=meta, rows=table.rows))
    cache.write_text(path.with_suffix(".md"), levers.to_markdown(meta, table.rows))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", default=None, choices=tuple(budgets.BUDGETS), help="default: $LDAE_BUDGET")
    parser.add_argument("--dataset", default=None, help="default: $LDAE_DATASET")
    parser.add_argument("--workers", type=int, default=None, help="runs at a time (default: 2 on a CPU)")
    parser.add_argument("--dims", type=int, nargs="+", default=list(DIMS), help=f"the latent dims besides 16 "
                        f"(default {' '.join(map(str, DIMS))})")
    parser.add_argument("--groups", nargs="+", default=list(GROUPS), choices=GROUPS, metavar="GROUP",
                        help=f"the groups to measure (default all: {', '.join(GROUPS)})")
    parser.add_argument("--replace", action="store_true", help="write only the groups measured now (default: "
                        "keep the other groups of the table already in --out when it was made by this code)")
    parser.add_argument("--out", default=None, help="folder for side_experiments.json/.md (default results/<budget>)")
    args = parser.parse_args(argv)
    budget, dataset = budgets.get_budget(args.budget), data.dataset_name(args.dataset)
    bad = [d for d in args.dims if d < 1 or d == 16]
    if bad:
        parser.error(f"--dims {' '.join(map(str, bad))}: each must be >= 1 and not 16 (the trajectory's d, "
                     "always shown)")
    start = time.perf_counter()
    table, gap, trained = measure(budget, dataset, SEEDS, args.workers, tuple(sorted(set(args.dims))),
                                  tuple(g for g in GROUPS if g in args.groups))
    command = "python scripts/side_experiments.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    out = Path(args.out) if args.out else ROOT / "results" / budget.name
    previous = None if args.replace else levers.read(budget.name, out, levers.SIDE_FILE)[1]
    groups, merged = merge(table, args.groups, previous, budget)
    path = save(table, gap, trained, budget, out, command, time.perf_counter() - start, groups, merged)
    print("\n" + path.with_suffix(".md").read_text() + f"written: {path} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
