"""The trajectory as a table: every step run over seeds, ours beside the paper's, written as JSON,
Markdown and a Fig. 6-style chart."""

from __future__ import annotations

import math
import multiprocessing
import platform
import statistics
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import budgets as budgets_mod
from . import device as device_mod
from .experiment import (
    get_cnn,
    get_tokenizer,
    git_commit,
    is_done,
    pixel_baseline,
    run,
    tokenizer_key,
    trains_tokenizer,
    write_json,
)
from .recipes import TRAJECTORY, Step


def mean_std(values):
    """(mean, sample std) of the values that are not None; std None for one value, both None for none."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def trajectory(budget=None, dataset: str = "fashion-mnist", seeds=(0,), steps: tuple[Step, ...] = TRAJECTORY,
               generate: bool = True, progress: bool = True, workers: int | None = None) -> dict:
    """Run every step at every seed (cached runs are reused) and summarise them against the paper.

    workers: how many runs train at the same time, each in its own process (None: :func:`default_workers`).
    With more than one, the tokenizers the runs share and the runs themselves are spread over the
    processes (see :func:`_run_in_parallel`); the numbers are the same as one run after another (same
    parameters to the bit: a test checks it), only the wall time changes.
    """
    budget = budgets_mod.get_budget(budget)
    device = device_mod.get_device()
    start = time.perf_counter()
    jobs = [(step, s) for step in steps for s in seeds]
    todo = [(step, s) for step, s in jobs if not is_done(step.recipe, budget, dataset, s, generate and step.generative)]
    workers = default_workers(device) if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers={workers} must be >= 1 (or None for the default)")
    if workers > 1 and len(todo) > 1:
        done, raw = _run_in_parallel(todo, budget, dataset, generate, workers, device, progress)
    else:
        done, raw = {}, pixel_baseline(dataset, budget, progress=progress)
    rows, previous = [], None
    for i, step in enumerate(steps):
        print(f"\n=== step {i + 1}/{len(steps)}: {step.label} ({step.key}) ===")
        results = [done.get((step.key, s)) or run(step.recipe, budget, dataset, s,
                                                  generate=generate and step.generative, progress=progress)
                   for s in seeds]
        mean, std = mean_std([r.probe_accuracy for r in results])
        knn, _ = mean_std([r.knn_accuracy for r in results])
        fd, _ = mean_std([r.frechet for r in results])
        row = dict(key=step.key, label=step.label, legitimate=step.legitimate, paper=step.paper_accuracy,
                   paper_fid=step.paper_fid, accuracies=[r.probe_accuracy for r in results], mean=mean, std=std,
                   knn=knn, frechet=fd, train_seconds=sum(r.train_seconds for r in results),
                   images_per_s=statistics.fmean(r.images_per_s for r in results),
                   cached=all(r.cached for r in results))
        if previous is not None:
            row["delta"] = mean - previous["mean"]
            row["paper_delta"] = step.paper_accuracy - previous["paper"]
            # the paper's change has no sign when it is 0.0 (Tab. 3 row 11): nothing to agree with
            row["same_sign"] = None if row["paper_delta"] == 0 else row["delta"] * row["paper_delta"] > 0
            noise = noise_bar(previous["std"], std, len(seeds))
            row["within_noise"] = None if noise is None else abs(row["delta"]) <= noise
        rows.append(row)
        previous = row
        print(f"--> {step.key}: ours {_fmt(mean, std)}  paper {step.paper_accuracy:.1f}")
    return dict(
        meta=dict(budget=budget.name, overrides=budgets_mod.overrides(budget), label=budgets_mod.label(budget),
                  file_stem=f"trajectory_{dataset}_{budgets_mod.slug(budget)}", dataset=dataset,
                  seeds=list(seeds), device=device_mod.describe(device),
                  workers=workers, runs_trained=len(todo),
                  torch=torch.__version__, python=platform.python_version(), commit=git_commit(),
                  created=time.strftime("%Y-%m-%d %H:%M:%S"), wall_seconds=time.perf_counter() - start,
                  command="python -m ldae_lite " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("__main__.py")
                  else ""),
        raw_pixels=dict(linear=raw["linear"], knn=raw["knn"]),
        steps=rows,
    )


def default_workers(device) -> int:
    """Runs at a time: 2 on a CPU with at least 2 threads, else 1.

    A width-192 DiT at 16 tokens is too small to keep two cores busy: on the 2-core reference machine
    two one-thread processes trained 10-20% more images per second in all than one process on both
    cores (about 850 against 560-770 img/s over whole lecture trajectories). A GPU runs one run at a time."""
    return 2 if torch.device(device).type == "cpu" and torch.get_num_threads() >= 2 else 1


def _run_in_parallel(todo, budget, dataset: str, generate: bool, workers: int, device, progress: bool):
    """Train and probe ``todo`` [(step, seed)] in ``workers`` processes, every core busy until the end.

    Every piece of work is a job for the pool, started as soon as a process is free and what it needs is
    ready, in this order:
      1. the label-trained CNN and each tokenizer trained by gradient, once (the runs share them). They are
         fitted on experiment.FIT_THREADS threads wherever they are fitted, so a worker fits the same bits
         as a notebook does;
      2. the runs, in trajectory order: a run waits for its tokenizer (and, when it samples, for the CNN),
         so the PCA steps fill the time while the tokenizers are fitted;
      3. the raw-pixel probe, last, in the time when the other process finishes the last run.
    The PCA tokenizers take seconds: this process fits them first.
    Returns ({(step key, seed): Result}, the raw-pixel baseline)."""
    threads = max(1, torch.get_num_threads() // workers)
    jobs = {}  # name -> (function, args, kwargs, names of the jobs it waits for)
    if generate and any(step.generative for step, _ in todo):
        jobs["cnn"] = (_timed, (get_cnn, budget, dataset, device), dict(progress=False), ())
    for step, s in todo:
        k = tokenizer_key(step.recipe, budget, dataset, s)
        if not trains_tokenizer(step.recipe):
            get_tokenizer(step.recipe, budget, dataset, s, device, progress=False)  # PCA: seconds, here
        elif k not in jobs:
            jobs[k] = (_timed, (get_tokenizer, step.recipe, budget, dataset, s, device), dict(progress=False),
                       ("cnn",) if step.recipe.tokenizer == "vqgan" else ())
    for step, s in todo:
        sample = generate and step.generative
        needs = (() if not trains_tokenizer(step.recipe) else (tokenizer_key(step.recipe, budget, dataset, s),))
        jobs[(step.key, s)] = (run, (step.recipe, budget, dataset, s), dict(generate=sample, progress=False),
                               needs + (("cnn",) if sample else ()))
    jobs["raw"] = (pixel_baseline, (dataset, budget), dict(progress=False), ())  # started last: see ready()
    print(f"\n{len(todo)} runs and {len(jobs) - len(todo) - 1} shared tokenizer(s)/CNN, {workers} jobs at a time "
          f"({threads} thread(s) each)")

    results, pending, running = {}, list(jobs), {}

    def ready(name) -> bool:
        if name == "raw":  # once every other job has started: it runs beside the last run, not after it
            return pending == ["raw"]
        return all(need in results for need in jobs[name][3])

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: safe with torch's thread pools
    bar = tqdm(total=len(jobs), desc="jobs", disable=not progress)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=torch.set_num_threads,
                             initargs=(threads,)) as pool:
        while pending or running:
            for name in [n for n in pending if ready(n)]:
                if len(running) >= workers:
                    break
                fn, args, kwargs, _ = jobs[name]
                running[pool.submit(fn, *args, **kwargs)] = name
                pending.remove(name)
            if not running:
                raise RuntimeError(f"jobs {pending} wait for jobs that never run")  # a bug, not bad input
            for future in wait(running, return_when=FIRST_COMPLETED).done:
                name = running.pop(future)
                r = results[name] = future.result()
                bar.update()
                if isinstance(name, tuple):
                    tqdm.write(f"  trained {name[0]} seed {name[1]}: probe {r.probe_accuracy:.2f}% "
                               f"({r.train_seconds:.0f} s at {r.images_per_s:.0f} img/s)")
                elif name != "raw":
                    tqdm.write(f"  fitted {name} ({r:.0f} s)")
    bar.close()
    return {name: r for name, r in results.items() if isinstance(name, tuple)}, results["raw"]


def _timed(fn, *args, **kwargs) -> float:
    """A pool job that only leaves files behind (the CNN, a tokenizer): run it, return its seconds, not
    its result (a model need not travel back between processes)."""
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def noise_bar(std_a, std_b, n: int):
    """Two standard errors of a difference of two means over n seeds each: a delta smaller than this is
    within noise. std_a, std_b: the seeds' sample standard deviations."""
    if std_a is None or std_b is None:
        return None
    return 2.0 * math.sqrt((std_a**2 + std_b**2) / n)


def change_summary(before: list[float], after: list[float]) -> str:
    """The change from one step's probes to the next's over the same seeds: mean ± std of the per-seed
    differences, both steps' mean ± std, and whether it is within noise (:func:`noise_bar`, the trajectory
    report's test: two standard errors of the difference of the means)."""
    (d, d_std), (a, a_std), (b, b_std) = (mean_std(v) for v in
                                          ([y - x for x, y in zip(before, after)], before, after))
    if len(before) == 1:
        return f"{d:+.2f} (one seed: {a:.2f} -> {b:.2f})"
    bar = noise_bar(a_std, b_std, len(before))
    return (f"{d:+.2f} ± {d_std:.2f} ({len(before)} seeds: {a:.2f} ± {a_std:.2f} -> {b:.2f} ± {b_std:.2f}); "
            f"{'within' if abs(d) <= bar else 'beyond'} noise (two standard errors: {bar:.2f})")


def _fmt(mean, std) -> str:
    if mean is None:
        return "-"
    return f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "")


def _signed(x) -> str:
    return "" if x is None else f"{x:+.2f}"


def to_markdown(report: dict) -> str:
    m = report["meta"]
    lines = [
        f"Budget `{m.get('label', m['budget'])}`, dataset `{m['dataset']}`, seeds {m['seeds']}, {m['device']}, "
        f"torch {m['torch']}, commit `{m['commit']}`, {m['created']}, wall time {m['wall_seconds'] / 60:.1f} min.",
        "",
        f"Raw-pixel baseline: linear probe {report['raw_pixels']['linear']:.2f}%, "
        f"kNN {report['raw_pixels']['knn']:.2f}%. Final step minus raw pixels: "
        f"{_signed(report['steps'][-1]['mean'] - report['raw_pixels']['linear'])} points.",
        "",
        "| # | step | ours (linear probe %) | Δ ours | paper | Δ paper | same sign | within noise | kNN | FD |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(report["steps"], 1):
        label = r["label"] + ("" if r["legitimate"] else " (uses labels)")
        sign = {True: "yes", False: "no"}.get(r.get("same_sign"), "")
        noise = {True: "yes", False: "no"}.get(r.get("within_noise"), "n/a" if i > 1 else "")
        fd = "" if r["frechet"] is None else f"{r['frechet']:.1f}"
        lines.append(f"| {i} | {label} | {_fmt(r['mean'], r['std'])} | {_signed(r.get('delta'))} | "
                     f"{r['paper']:.1f} | {_signed(r.get('paper_delta'))} | {sign} | {noise} | "
                     f"{r['knn']:.2f} | {fd} |")
    return "\n".join(lines) + "\n"


def save(report: dict, out_dir) -> dict[str, Path]:
    """Write the report as JSON, Markdown and a PNG chart into ``out_dir``, named
    ``trajectory_<dataset>_<budget>`` (with the budget's overrides: ``..._lecture_steps1200``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .paper import TRAJECTORY as PAPER_STEPS
    from .plots import plot_trajectory

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = report["meta"].get("file_stem") or f"trajectory_{report['meta']['dataset']}_{report['meta']['budget']}"
    paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md", "png": out / f"{stem}.png"}
    write_json(paths["json"], report)
    tmp = paths["md"].with_suffix(".md.tmp")
    tmp.write_text(to_markdown(report))
    tmp.replace(paths["md"])
    ours = report  # plots reads each step's per-seed accuracies (and the dataset, for the legend) from it
    ax = plot_trajectory(PAPER_STEPS, ours=ours)
    ax.figure.savefig(paths["png"], dpi=120, bbox_inches="tight")
    plt.close(ax.figure)
    return paths
