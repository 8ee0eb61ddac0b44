"""Command line: ``python -m ldae_lite {data, trajectory, run, pixels}``. The main job is ``trajectory``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from . import budgets, data, recipes, validate

REQUIRED_DATASETS = ("fashion-mnist", "fashion-mnist-m")  # `data` fails without these; the others are optional


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "data":
        return _data()
    if args.fresh:
        os.environ["LDAE_FRESH"] = "1"  # cache.FRESH_VAR: every cached file is computed again, once
    try:  # what argparse lets through but a run refuses is a usage error too, not a traceback
        _check(args)
    except validate.BadInput as e:
        parser.error(str(e))
    args.budget = budgets.get_budget(args.budget)
    try:
        args.dataset = data.dataset_name(args.dataset)  # None: $LDAE_DATASET or the default; a folder: registered
    except (ValueError, FileNotFoundError) as e:
        parser.error(f"--dataset: {e}")
    if args.train_steps is not None:
        if args.train_steps < 1:
            parser.error(f"--train-steps {args.train_steps}: must be >= 1")
        args.budget = dataclasses.replace(args.budget, steps=args.train_steps)
    if args.set:
        try:
            args.budget = budgets.with_settings(args.budget, args.set)
        except validate.BadInput as e:
            parser.error(f"--set: {e}")
    return {"pixels": _pixels, "run": _run, "trajectory": _trajectory}[args.command](args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ldae_lite", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("data", help="say which datasets are found and where")

    def common(p):
        p.add_argument("--budget", default=None, choices=tuple(budgets.BUDGETS),
                       help="model/training size (default: $LDAE_BUDGET or lecture)")
        p.add_argument("--dataset", default=None, metavar="NAME_OR_FOLDER",
                       help=f"the images to train and probe on: one of {data.DATASETS}, or a folder of your own "
                            f"images, root/<class>/<image> (default: ${data.ENV_VAR} or {data.DEFAULT})")
        p.add_argument("--train-steps", type=int, default=None, metavar="N",
                       help="the budget's optimizer steps, overridden (the report and its files name the change)")
        p.add_argument("--set", nargs="+", default=None, metavar="FIELD=VALUE",
                       help="override budget fields, e.g. --set steps=300 batch_size=256 (see ldae_lite/budgets.py; "
                            "the report and its files name the change)")
        p.add_argument("--fresh", action="store_true",
                       help="reuse nothing cached: fit, train and probe again, once each (same as LDAE_FRESH=1)")

    p = sub.add_parser("trajectory", help="run the paper's 13 steps, print ours vs the paper, save the table")
    common(p)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--out", default=None, help="folder for JSON/Markdown/PNG (default: runs/trajectory)")
    p.add_argument("--no-generate", action="store_true", help="skip sampling and the Frechet distance")
    p.add_argument("--steps", nargs="+", default=None, choices=tuple(recipes.STEPS), metavar="STEP",
                   help=f"a subset of step keys: {tuple(recipes.STEPS)}")
    p.add_argument("--workers", type=int, default=None,
                   help="runs trained at the same time, one process each (default: 2 on a CPU, 1 on a GPU)")

    p = sub.add_parser("run", help="train and probe one trajectory step")
    common(p)
    p.add_argument("step", choices=tuple(recipes.STEPS))
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("pixels", help="linear probe and kNN on raw pixels")
    common(p)
    return parser


def _check(args) -> None:
    """The values argparse accepts but a run must refuse: a budget from $LDAE_BUDGET that does not exist, seeds
    outside [0, 2^32) or repeated, a step named twice, fewer than one worker."""
    budgets.get_budget(args.budget)
    if args.command == "run":
        validate.seed(args.seed, "--seed")
    if args.command == "trajectory":
        validate.seeds(args.seeds, "--seeds")
        validate.distinct("--steps", args.steps or (), "step")
        validate.optional_integer("--workers", args.workers, low=1)


def _pixels(args) -> int:
    from .probe import raw_pixel_baseline

    b = args.budget
    r = raw_pixel_baseline(args.dataset, probe_train=b.probe_train, probe_test=b.probe_test, epochs=b.probe_epochs)
    print(f"raw pixels on {args.dataset} ({r.n_train}/{r.n_test} images): linear probe {r.linear.accuracy:.2f}%, "
          f"kNN {r.knn:.2f}%, {r.seconds:.0f} s")
    return 0


def _run(args) -> int:
    from .experiment import run

    step = recipes.get_step(args.step)
    r = run(step.recipe, args.budget, args.dataset, args.seed, generate=step.generative)
    print(f"{step.key}: linear probe {r.probe_accuracy:.2f}% (paper {step.paper_accuracy}), "
          f"kNN {r.knn_accuracy:.2f}%, {r.train_seconds:.0f} s training at {r.images_per_s:.0f} img/s")
    return 0


def _trajectory(args) -> int:
    from . import report, trajectory
    from .cache import runs_dir

    steps = recipes.TRAJECTORY if args.steps is None else tuple(recipes.get_step(k) for k in args.steps)
    rep = trajectory.run(args.budget, args.dataset, tuple(args.seeds), steps, generate=not args.no_generate,
                         workers=args.workers)
    print()
    print(report.to_markdown(rep))
    paths = report.save(rep, Path(args.out) if args.out else runs_dir() / "trajectory")
    print("written: " + ", ".join(str(p) for p in paths.values()))
    print(report.time_summary(rep))  # the table above has it phase by phase
    return 0


def _data() -> int:
    ok = True
    for name in data.DATASETS:
        try:
            ds = data.load(name, "train")
            print(f"  {name}: {len(ds.labels)} training images ({ds.source})")
        except (FileNotFoundError, RuntimeError, data.BrokenFileError) as e:  # say what is wrong, go on
            required = name in REQUIRED_DATASETS
            ok = ok and not required
            print(f"  {name}: not available -- {e}" if required else
                  f"  {name}: not available (optional) -- {str(e).splitlines()[0]}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
