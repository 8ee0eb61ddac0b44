"""Run the paper's trajectory: every step at every seed, in one process or spread over several, and
summarise each step against the paper.

The result is a plain dict (JSON as it is), the *trajectory report*: ``meta`` (budget, dataset, seeds,
machine, commit, time, and where the time went: ``time_breakdown``, :func:`timing.breakdown`),
``raw_pixels`` (the raw-pixel probe) and ``steps``, one row per step with our
accuracies over seeds, their mean and std, the paper's number, the change from the step before (ours and
the paper's), whether the two changes have the same sign, and whether ours is within seed noise.
:mod:`ldae_lite.report` writes it as Markdown, JSON and a chart; :mod:`ldae_lite.compare` reads it.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import statistics
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import torch
from tqdm.auto import tqdm

from . import budgets as budgets_mod
from . import device as device_mod
from . import timing, validate
from .builders import get_cnn, get_tokenizer, needs_cnn
from .cache import git_commit, is_done, tokenizer_key, trains_tokenizer
from .data import dataset_name
from .experiment import pixel_baseline
from .experiment import run as run_step
from .lifeline import end_with_parent
from .recipes import STEPS, TRAJECTORY, Step
from .stats import mean_std, noise_bar
from .tables import fmt_mean_std


def run(budget=None, dataset: str = "fashion-mnist", seeds=(0,), steps: tuple[Step, ...] = TRAJECTORY,
        generate: bool = True, progress: bool = True, workers: int | None = None) -> dict:
    """Run every step at every seed (cached runs are reused) and summarise them against the paper.

    workers: how many runs train at the same time, each in its own process (None: :func:`default_workers`).
    With more than one, the tokenizers the runs share and the runs themselves are spread over the
    processes (see :func:`_run_in_parallel`); the numbers are the same as one run after another (same
    parameters to the bit: a test checks it), only the wall time changes.

    ``meta.time_breakdown`` says where the wall time went, phase by phase (:func:`timing.breakdown`); what
    was reused from the cache counts as 0 s.
    """
    budget, seeds = budgets_mod.get_budget(budget), validate.seeds(seeds)  # a repeated seed: a spread of 0
    device = device_mod.get_device()
    start = time.perf_counter()
    todo = [(step, s) for step in steps for s in seeds
            if not is_done(step.recipe, budget, dataset, s, generate and step.generative)]
    workers = default_workers(device) if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers={workers} must be >= 1 (or None for the default)")
    pool = dict(workers=1)  # the processes of the parallel part, its wall seconds and its jobs' seconds
    with timing.record() as phases:
        if workers > 1 and len(todo) > 1:
            done, raw, pool = _run_in_parallel(todo, budget, dataset, generate, workers, device, progress)
        else:
            done, raw = {}, pixel_baseline(dataset, budget, progress=progress)
        rows = _step_rows(steps, seeds, done, budget, dataset, generate, progress)
    wall = time.perf_counter() - start
    meta = dict(budget=budget.name, overrides=budgets_mod.overrides(budget), label=budgets_mod.label(budget),
                file_stem=f"trajectory_{dataset}_{budgets_mod.slug(budget)}", dataset=dataset,
                seeds=list(seeds), device=device_mod.describe(device), workers=workers, runs_trained=len(todo),
                torch=torch.__version__, python=platform.python_version(), commit=git_commit(),
                created=time.strftime("%Y-%m-%d %H:%M:%S"), wall_seconds=wall,
                time_breakdown=timing.breakdown(phases, wall, **pool),
                command="python -m ldae_lite " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("__main__.py")
                else "")
    return dict(meta=meta, raw_pixels=dict(linear=raw["linear"], knn=raw["knn"]), steps=rows)


def _step_rows(steps: tuple[Step, ...], seeds, done: dict, budget, dataset: str, generate: bool,
               progress: bool) -> list[dict]:
    """One row per step (:func:`_step_row`, :func:`_change`), its runs taken from ``done`` {(step key, seed):
    Result} or run here (cache hits, or every run when the trajectory runs in one process)."""
    rows, previous = [], None
    for i, step in enumerate(steps):
        print(f"\n=== step {i + 1}/{len(steps)}: {step.label} ({step.key}) ===")
        results = [done.get((step.key, s)) or run_step(step.recipe, budget, dataset, s,
                                                       generate=generate and step.generative, progress=progress)
                   for s in seeds]
        row = _step_row(step, results)
        if previous is not None:
            row.update(_change(previous, row, step, len(seeds)))
        rows.append(row)
        previous = row
        print(f"--> {step.key}: ours {fmt_mean_std(row['mean'], row['std'])}  paper {step.paper_accuracy:.1f}")
    return rows


def _step_row(step: Step, results) -> dict:
    """One step over its seeds: accuracies, mean, std, kNN, Frechet distance, time, beside the paper's."""
    mean, std = mean_std([r.probe_accuracy for r in results])
    knn, _ = mean_std([r.knn_accuracy for r in results])
    fd, _ = mean_std([r.frechet for r in results])
    return dict(key=step.key, label=step.label, legitimate=step.legitimate, paper=step.paper_accuracy,
                paper_fid=step.paper_fid, accuracies=[r.probe_accuracy for r in results], mean=mean, std=std,
                knn=knn, frechet=fd, train_seconds=sum(r.train_seconds for r in results),
                images_per_s=statistics.fmean(r.images_per_s for r in results),
                cached=all(r.cached for r in results))


def _change(previous: dict, row: dict, step: Step, n_seeds: int) -> dict:
    """The change into ``row`` from the step shown before it: ours and the paper's, whether they have the
    same sign, and whether ours is within seed noise (:func:`stats.noise_bar`; None with one seed)."""
    delta, paper_delta = row["mean"] - previous["mean"], step.paper_accuracy - previous["paper"]
    noise = noise_bar(previous["std"], row["std"], n_seeds)
    # the paper's change has no sign when it is 0.0 (Tab. 3 row 11): nothing to agree with
    return dict(delta=delta, paper_delta=paper_delta,
                same_sign=None if paper_delta == 0 else delta * paper_delta > 0,
                within_noise=None if noise is None else abs(delta) <= noise)


def steps_to_run(budget=None, dataset: str = "fashion-mnist", seeds=(0,), run_all: bool = False,
                 always=("image_output", "predict_image")):
    """The trajectory steps to put in a live report: all of them when ``run_all``; otherwise those already
    cached for every seed, plus ``always`` (cheap steps), in trajectory order."""
    if run_all:
        return TRAJECTORY
    return tuple(s for s in TRAJECTORY
                 if s.key in always or all(is_done(s.recipe, budget, dataset, seed) for seed in seeds))


def train_first(keys, budget=None, dataset: str | None = None, seed: int = 0, workers: int | None = None) -> int:
    """Train the trajectory steps ``keys`` at one seed, ``workers`` at a time, so that the cells after it
    read each run from the cache. A notebook that shows several steps calls this first: on a 2-core CPU
    two one-thread runs side by side finish sooner than the same runs one after another on both cores
    (:func:`default_workers`). Cached runs are skipped. Returns how many runs were trained."""
    if isinstance(keys, str) or any(k not in STEPS for k in keys):
        raise validate.BadValue(f"keys={keys!r}: each must be a trajectory step, one of {tuple(STEPS)}")
    budget, dataset = budgets_mod.get_budget(budget), dataset_name(dataset)
    steps = tuple(STEPS[k] for k in keys)
    todo = [s for s in steps if not is_done(s.recipe, budget, dataset, seed)]
    if todo:
        run_many([(step.key, step.recipe, seed) for step in todo], budget, dataset, workers, raw=False)
    print(f"{len(todo)} of {len(steps)} runs trained here, {len(steps) - len(todo)} read from the cache")
    return len(todo)


def run_many(runs, budget=None, dataset: str | None = None, workers: int | None = None, after=None,
             progress: bool = True, raw: bool = True) -> dict:
    """Train and probe ``runs`` [(name, recipe, seed)] ``workers`` at a time, as a trajectory does (cached
    runs are read, not trained), then the ``after`` jobs {name: (function, args, kwargs, names of the runs
    it waits for)}, each in a worker once its runs are done. For side experiments: recipes that are not
    trajectory steps. Returns {(name, seed): Result, "raw": the raw-pixel baseline (when ``raw``), **{after
    name: what its function returned}}."""
    budget, dataset = budgets_mod.get_budget(budget), dataset_name(dataset)
    names = [(name, seed) for name, _, seed in runs]
    if len(set(names)) != len(names):
        raise validate.BadValue(f"runs={names!r}: each (name, seed) must appear once")
    if workers is not None and workers < 1:
        raise validate.BadValue(f"workers={workers} must be >= 1 (or None for the default)")
    device = device_mod.get_device()
    steps = {(name, seed): (Step(name, name, recipe, None, True), seed) for name, recipe, seed in runs}
    todo = [(step, s) for step, s in steps.values() if not is_done(step.recipe, budget, dataset, s)]
    planned = _plan(todo, budget, dataset, False, device, raw)
    # the after jobs first: each starts as soon as its runs are done, before the runs still waiting
    jobs = {job: (fn, args, kwargs, tuple(n for n in needs if n in planned))  # cached runs: nothing to wait for
            for job, (fn, args, kwargs, needs) in (after or {}).items()} | planned
    workers = max(1, min(default_workers(device) if workers is None else workers, len(jobs)))  # one job: all threads
    results = _run_jobs(jobs, workers, max(1, torch.get_num_threads() // workers), progress)[0] if jobs else {}
    for name, (step, s) in steps.items():  # the cached ones: read here
        results.setdefault(name, run_step(step.recipe, budget, dataset, s, progress=False))
    return results


def default_workers(device) -> int:
    """Runs at a time: 2 on a CPU with at least 2 threads, else 1.

    A width-192 DiT at 16 tokens is too small to keep two cores busy: on the 2-core reference machine two
    one-thread processes trained more images per second in all than one process on both cores, over whole
    lecture trajectories (measured in commit 6f28348). A GPU runs one run at a time."""
    return 2 if torch.device(device).type == "cpu" and torch.get_num_threads() >= 2 else 1


# --------------------------------------------------------------------------------------------------
# several runs at a time, one process each
# --------------------------------------------------------------------------------------------------
def _run_in_parallel(todo, budget, dataset: str, generate: bool, workers: int, device, progress: bool):
    """Train and probe ``todo`` [(step, seed)] in ``workers`` processes, every core busy until the end
    (:func:`_plan` says in which order). Returns ({(step key, seed): Result}, the raw-pixel baseline,
    {workers, pool_wall, busy}: the pool's processes, its wall seconds and the seconds of its jobs)."""
    threads = max(1, torch.get_num_threads() // workers)
    jobs = _plan(todo, budget, dataset, generate, device)
    print(f"\n{len(todo)} runs and {len(jobs) - len(todo) - 1} shared tokenizer(s)/CNN, {workers} jobs at a time "
          f"({threads} thread(s) each)")
    results, pool = _run_jobs(jobs, workers, threads, progress)
    return {name: r for name, r in results.items() if isinstance(name, tuple)}, results["raw"], pool


def _plan(todo, budget, dataset: str, generate: bool, device, raw: bool = True) -> dict:
    """Every piece of work as a pool job, {name: (function, args, kwargs, names of the jobs it waits for)},
    started as soon as a process is free and what it needs is ready, in this order:
      1. the label-trained CNN and each tokenizer trained by gradient, once (the runs share them). They are
         fitted on builders.FIT_THREADS threads wherever they are fitted, so a worker fits the same bits
         as a notebook does;
      2. the runs, in trajectory order: a run waits for its tokenizer (and, when it samples, for the CNN),
         so the PCA steps fill the time while the tokenizers are fitted;
      3. the raw-pixel probe (when ``raw``), last, in the time when the other process finishes the last run.
    The PCA tokenizers take seconds: this process fits them here, before any job starts."""
    jobs = {}
    if generate and any(step.generative for step, _ in todo):
        jobs["cnn"] = (_fit, (get_cnn, budget, dataset, device), dict(progress=False), ())
    for step, s in todo:
        k = tokenizer_key(step.recipe, budget, dataset, s)
        if not trains_tokenizer(step.recipe):
            get_tokenizer(step.recipe, budget, dataset, s, device, progress=False)  # PCA: seconds, here
        elif k not in jobs:
            jobs[k] = (_fit, (get_tokenizer, step.recipe, budget, dataset, s, device), dict(progress=False),
                       ("cnn",) if needs_cnn(step.recipe) else ())
    for step, s in todo:
        sample = generate and step.generative
        needs = (tokenizer_key(step.recipe, budget, dataset, s),) if trains_tokenizer(step.recipe) else ()
        jobs[(step.key, s)] = (run_step, (step.recipe, budget, dataset, s), dict(generate=sample, progress=False),
                               needs + (("cnn",) if sample else ()))
    if raw:
        jobs["raw"] = (pixel_baseline, (dataset, budget), dict(progress=False), ())  # started last: see _run_jobs
    return jobs


def _run_jobs(jobs: dict, workers: int, threads: int, progress: bool) -> tuple[dict, dict]:
    """Run the jobs of :func:`_plan` in a pool of ``workers`` fresh processes of ``threads`` threads each,
    each job once all it waits for is done; the workers end if this process dies (:func:`_start_worker`).
    Returns ({name: what the job returned}, {workers, pool_wall, busy}); the phases the jobs timed are
    counted in this process's open recorders (:func:`timing.add`)."""
    results, pending, running, busy = {}, list(jobs), {}, 0.0

    def ready(name) -> bool:
        if name == "raw":  # once every other job has started: it runs beside the last run, not after it
            return pending == ["raw"]
        return all(need in results for need in jobs[name][3])

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: safe with torch's thread pools
    bar = tqdm(total=len(jobs), desc="jobs", disable=not progress)
    start = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(os.getpid(), threads)) as pool:
        while pending or running:
            for name in [n for n in pending if ready(n)]:
                if len(running) >= workers:
                    break
                fn, args, kwargs, _ = jobs[name]
                running[pool.submit(_job, fn, args, kwargs)] = name
                pending.remove(name)
            if not running:
                raise RuntimeError(f"jobs {pending} wait for jobs that never run")  # a bug, not bad input
            for future in wait(running, return_when=FIRST_COMPLETED).done:
                name = running.pop(future)
                results[name], phases, seconds = future.result()
                timing.add(phases)
                busy += seconds
                bar.update()
                _announce(name, results[name], seconds)
    bar.close()
    return results, dict(workers=workers, pool_wall=time.perf_counter() - start, busy=busy)


def _start_worker(parent_pid: int, threads: int) -> None:
    """Each worker, first: end when the parent ends (whatever kills it), then use ``threads`` threads."""
    end_with_parent(parent_pid)
    torch.set_num_threads(threads)
    print(f"worker pid {os.getpid()}: {threads} thread(s), ends with its parent (pid {parent_pid})", flush=True)


def _job(fn, args, kwargs) -> tuple:
    """A job, in a worker: (what ``fn`` returned, the phases it timed, its seconds)."""
    start = time.perf_counter()
    with timing.record() as phases:
        out = fn(*args, **kwargs)
    return out, phases.as_dict(), time.perf_counter() - start


def _fit(fn, *args, **kwargs) -> None:
    """A job that only leaves files behind (the CNN, a tokenizer): a model need not travel back."""
    fn(*args, **kwargs)


def _announce(name, result, seconds: float) -> None:
    """One line when a job finishes: a run's probe and speed, or a fitted tokenizer's (the CNN's) seconds."""
    if isinstance(name, tuple):
        tqdm.write(f"  trained {name[0]} seed {name[1]}: probe {result.probe_accuracy:.2f}% "
                   f"({result.train_seconds:.0f} s at {result.images_per_s:.0f} img/s)")
    elif name != "raw":
        tqdm.write(f"  done: {name} ({seconds:.0f} s)")
