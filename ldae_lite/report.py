"""The trajectory report (:mod:`ldae_lite.trajectory` makes it) as tables and files, and found again:
Markdown for the file and for a notebook, JSON + Markdown + a Fig. 6-style chart on disk, the reports
shipped in ``results/`` or written to ``runs/trajectory``, one paragraph saying where a report came from,
and where its wall time went (:func:`time_breakdown_markdown`).
"""

from __future__ import annotations

from pathlib import Path

from . import budgets as budgets_mod
from .cache import REPORT_SCHEMA, RESULTS_DIR, read_record, runs_dir, write_json, write_text
from .checkpoint import atomic_write
from .recipes import TRAJECTORY
from .tables import fmt, fmt_mean_std, markdown_table
from .timing import BREAKDOWN

BUDGET_ORDER = ("full", "lecture", "smoke")  # the order reports are read in: the most trained first
_YES_NO = {True: "yes", False: "no"}
# The phases of meta.time_breakdown (timing.BREAKDOWN) as a reader names them.
PHASE_NAMES = {"data": "data", "cnn": "CNN", "tokenizers": "tokenizers", "training": "denoiser training",
               "features": "features", "probes": "probes", "sampling": "sampling + FD",
               "workers_idle": "workers idle", "other": "other"}


# --------------------------------------------------------------------------------------------------
# a report as Markdown
# --------------------------------------------------------------------------------------------------
def to_markdown(report: dict) -> str:
    """The report's Markdown file: provenance, the raw-pixel baseline, one row per step, then where the
    time went (reports made before the breakdown was kept end with the table)."""
    m = report["meta"]
    raw = report["raw_pixels"]
    head = (f"Budget `{m.get('label', m['budget'])}`, dataset `{m['dataset']}`, seeds {m['seeds']}, {m['device']}, "
            f"torch {m['torch']}, commit `{m['commit']}`, {m['created']}, wall time {m['wall_seconds'] / 60:.1f} min.\n"
            f"\nRaw-pixel baseline: linear probe {raw['linear']:.2f}%, kNN {raw['knn']:.2f}%. Final step minus raw "
            f"pixels: {fmt(report['steps'][-1]['mean'] - raw['linear'], 2, signed=True, empty='')} points.\n\n"
            + (f"Note: {m['note']}.\n\n" if m.get("note") else ""))
    rows = []
    for i, r in enumerate(report["steps"], 1):
        rows.append([i, _step_label(r), fmt_mean_std(r["mean"], r["std"]),
                     fmt(r.get("delta"), 2, signed=True, empty=""), f"{r['paper']:.1f}",
                     fmt(r.get("paper_delta"), 2, signed=True, empty=""), _YES_NO.get(r.get("same_sign"), ""),
                     _YES_NO.get(r.get("within_noise"), "n/a" if i > 1 else ""), f"{r['knn']:.2f}",
                     fmt(r["frechet"], 1, empty="")])
    table = markdown_table(["#", "step", "ours (linear probe %)", "Δ ours", "paper", "Δ paper", "same sign",
                            "within noise", "kNN", "FD"], rows)
    return head + table + ("\n" + time_breakdown_markdown(report) if "time_breakdown" in m else "")


def trajectory_markdown(report: dict) -> str:
    """The notebook's table of a report: ours (mean ± std over seeds) and the paper's, each change and whether
    its sign agrees, with the training time and seeds of each number, and whether the report trained the
    run or reused a cached one. Δ is to the previous row shown. Where the report's time went follows the
    table (:func:`time_breakdown_markdown`; reports made before it was kept end with the table)."""
    seeds = report["meta"]["seeds"]
    rows = []
    for i, r in enumerate(report["steps"], 1):
        sign = {True: "yes", False: "**no**", None: "(paper: 0)"}[r["same_sign"]] if "same_sign" in r else ""
        rows.append([i, _step_label(r), fmt_mean_std(r["mean"], r.get("std")),
                     fmt(r.get("delta"), 2, signed=True, empty=""), f"{r['paper']:.1f}",
                     fmt(r.get("paper_delta"), 1, signed=True, empty=""), sign, _YES_NO.get(r.get("within_noise"), ""),
                     f"{r.get('train_seconds') or 0:.0f}", len(r.get("accuracies", seeds)),
                     "reused" if r.get("cached") else "trained"])
    table = markdown_table(["#", "step", "ours %", "Δ ours", "paper %", "Δ paper", "same sign", "within noise",
                            "train s", "seeds", "run (when the report was made)"], rows)
    return table + ("\n" + time_breakdown_markdown(report) if "time_breakdown" in report["meta"] else "")


def _step_label(row: dict) -> str:
    return row["label"] + ("" if row["legitimate"] else " (uses labels)")


# --------------------------------------------------------------------------------------------------
# where the time went
# --------------------------------------------------------------------------------------------------
def time_breakdown_markdown(report: dict) -> str:
    """A sentence on the wall time and the workers, then one row: each phase's seconds and share.

    The shares are of the worker time (the wall time, with a parallel part counted once per worker:
    :func:`timing.breakdown`), so they add up to 100%. What the report reused from the cache counts as
    0 s and reads "cached"."""
    tb = report["meta"]["time_breakdown"]
    text = f"Where the time went: wall time {_duration(tb['wall_seconds'])}"
    if tb["workers"] > 1:
        text += (f", {tb['workers']} workers in parallel ({_duration(tb['worker_seconds'])} of worker time, "
                 f"the shares below are of it), workers busy {tb['busy_percent']:.0f}% of their time")
    trained, runs = report["meta"].get("runs_trained"), sum(len(r.get("accuracies", ())) for r in report["steps"])
    if trained is not None and trained < runs:
        text += f"; {trained} of {runs} runs trained, the others reused from the cache (0 s)"
    cells = [_phase_cell(tb["phases"][name]) for name in BREAKDOWN]
    return text + ".\n\n" + markdown_table([PHASE_NAMES[name] for name in BREAKDOWN], [cells])


def time_summary(report: dict) -> str:
    """One line: the wall time, in parallel how busy the workers were, and each phase's share (largest
    first; those under 0.5% left out)."""
    tb = report["meta"]["time_breakdown"]
    shares = sorted(((p["percent"], name) for name, p in tb["phases"].items() if p["percent"] >= 0.5), reverse=True)
    busy = f", workers busy {tb['busy_percent']:.0f}%" if tb["workers"] > 1 else ""
    return (f"time: {_duration(tb['wall_seconds'])} wall{busy}; "
            + ", ".join(f"{PHASE_NAMES[name]} {pct:.0f}%" for pct, name in shares))


def _phase_cell(entry: dict) -> str:
    if entry["cached"]:
        return "cached"
    return f"{_seconds(entry['seconds'])} ({entry['percent']:.0f}%)"


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if abs(s) < 10 else f"{s:.0f} s"


def _duration(s: float) -> str:
    return _seconds(s) if s < 60 else f"{s / 60:.1f} min"


def describe_report(report: dict, source=None) -> str:
    """One paragraph of provenance: budget, seeds, hardware, wall and training time, commit, where from."""
    m = report["meta"]
    train_min = sum(r.get("train_seconds") or 0.0 for r in report["steps"]) / 60
    text = (f"budget `{m.get('label', m['budget'])}`, dataset `{m['dataset']}`, seeds {m['seeds']}, on {m['device']} "
            f"(torch {m.get('torch', '?')}); {len(report['steps'])} steps, training time {train_min:.1f} min "
            f"summed over steps and seeds, report built in {m['wall_seconds'] / 60:.1f} min; "
            f"commit `{m.get('commit') or '?'}`, {m.get('created', '')}")
    if m.get("command"):
        text += f"; command `{m['command']}`"
    if source is not None:
        text += f"; read from `{source}`"
    return text + "."


def report_training(report: dict) -> str:
    """How long a report's runs trained: "1200 steps of 128" (its budget's, or the overrides')."""
    m = report["meta"]
    preset = budgets_mod.BUDGETS.get(m["budget"])
    if preset is None:
        return f"budget {m['budget']}"
    over = m.get("overrides") or {}
    return f"{over.get('steps', preset.steps)} steps of {over.get('batch_size', preset.batch_size)}"


# --------------------------------------------------------------------------------------------------
# files: written, found, chosen
# --------------------------------------------------------------------------------------------------
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
    write_text(paths["md"], to_markdown(report))
    ours = report  # plots reads each step's per-seed accuracies (and the dataset, for the legend) from it
    ax = plot_trajectory(PAPER_STEPS, ours=ours)
    atomic_write(paths["png"], lambda f: ax.figure.savefig(f, format="png", dpi=120, bbox_inches="tight"))
    plt.close(ax.figure)
    return paths


def find_reports(dataset: str = "fashion-mnist", folders=None) -> list[tuple[Path, dict]]:
    """Trajectory reports (``python -m ldae_lite trajectory --out ...``) found for ``dataset``.

    folders: where to look, recursively; default the repository's ``results/`` (reference results shipped
    with it) and ``runs/trajectory`` (what ``make trajectory`` wrote here). Sorted full, lecture, smoke;
    within a budget, the preset itself before a report whose budget overrides a field (``--train-steps``).
    """
    folders = [RESULTS_DIR, runs_dir() / "trajectory"] if folders is None else folders
    found = []
    for folder in map(Path, folders):
        for path in sorted(folder.rglob(f"trajectory_{dataset}_*.json")) if folder.is_dir() else []:
            rep = read_record(path, REPORT_SCHEMA, "leaving it out")  # a field missing or mistyped: warned
            if rep is not None:
                found.append((path, rep))
    rank = {b: i for i, b in enumerate(BUDGET_ORDER)}
    return sorted(found, key=lambda pr: (rank.get(pr[1]["meta"].get("budget"), len(rank)),
                                         bool(pr[1]["meta"].get("overrides"))))


def best_report(candidates):
    """The (source, report) to read: complete reports (all 13 steps) before partial ones, then the larger
    budget (full, lecture, smoke), then a preset before an overridden budget (``--train-steps``), then the
    earlier candidate. candidates: iterable of (source, report)."""
    candidates = list(candidates)
    if not candidates:
        raise ValueError("no report to choose from")
    rank = {b: i for i, b in enumerate(BUDGET_ORDER)}

    def order(i_pair):
        i, (_, rep) = i_pair
        complete = {r["key"] for r in rep["steps"]} >= {s.key for s in TRAJECTORY}
        overridden = bool(rep["meta"].get("overrides"))
        return (not complete, rank.get(rep["meta"].get("budget"), len(rank)), overridden, i)

    return min(enumerate(candidates), key=order)[1]
