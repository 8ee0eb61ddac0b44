"""The levers table: what limits l-DAE and the paper's effects at a budget (``scripts/levers.py`` measures
it and writes ``results/<budget>/levers.json`` and ``levers.md``), read back and written as Markdown, so a
lecture can show a group of it without training.

``results/<budget>/side_experiments.json`` (``scripts/side_experiments.py``) has the same format: the side
experiments the notebooks show, on the default dataset over three seeds.

The table is {meta, rows}: meta holds the command, commit, device and time that made it, and ``changes``
(a step and the step after it, probed over the same seeds); each row has group, dataset, what, accuracy,
knn, train_seconds and note.
"""

from __future__ import annotations

from pathlib import Path

from .cache import RESULTS_DIR, read_record
from .stats import change_summary
from .tables import markdown_table

FILE = "levers.json"  # scripts/levers.py: what limits the effects, mostly at the budget of earlier versions
SIDE_FILE = "side_experiments.json"  # the default pair's side experiments over seeds (scripts/side_experiments.py)

# What reference() and group_markdown() read of the table (cache.read_record: "name?" may be missing).
SCHEMA = {"meta": {"budget": str, "device": str, "commit": str, "created": str, "command": str, "changes?": [dict],
                   "label?": str, "note?": str, "groups?": [str]},
          "rows": [{"group": str, "dataset": str, "what": str, "accuracy": float, "note": str,
                    "knn?": (float, type(None)), "train_seconds?": (float, type(None)),
                    "accuracies?": [float]}]}  # accuracies: one per seed, where a row ran over several


def read(budget: str = "lecture", folder=None, file: str = FILE):
    """(path, the whole table) of ``file`` (the levers table, or SIDE_FILE) in ``folder`` (default
    ``results/<budget>``), or (path, None) when it is absent or damaged (warned, naming the file and the field)."""
    path = (Path(folder) if folder is not None else RESULTS_DIR / budget) / file
    return path, read_record(path, SCHEMA, "showing no reference")


def reference(group: str, budget: str = "lecture", folder=None, file: str = FILE):
    """The rows of one group of the shipped levers table (or of ``file``): (meta, rows), or None when the
    file is absent or damaged. folder: where the file is (default ``results/<budget>``)."""
    path, table = read(budget, folder, file)
    if table is None:
        return None
    groups = list(dict.fromkeys(r["group"] for r in table["rows"]))
    if group not in groups:
        raise ValueError(f"group={group!r} is not in {path}; its groups are {groups}")
    return table["meta"], [r for r in table["rows"] if r["group"] == group]


def group_markdown(meta: dict, rows: list[dict]) -> str:
    """A levers group as Markdown: where it comes from, then dataset / what / probe / note, then the changes
    measured over seeds in the rows' groups (:func:`changes_markdown`)."""
    source = (f"Budget `{meta.get('label', meta['budget'])}`, {meta['device']}, commit `{meta['commit']}`, "
              f"{meta['created']}; `{meta['command'].strip()}`.")
    table = markdown_table(["dataset", "what", "linear probe %", "note"],
                           [[r["dataset"], r["what"], r["accuracy"], r["note"]] for r in rows])
    return source + "\n\n" + table + "\n" + changes_markdown(meta, {r["group"] for r in rows})


def changes_markdown(meta: dict, groups=None) -> str:
    """The table's changes (``meta["changes"]``) as Markdown bullets: mean ± std of the per-seed differences,
    and within or beyond noise (:func:`stats.change_summary`). groups: only the changes of these groups
    (None: all); "" if none."""
    changes = [c for c in meta.get("changes", []) if groups is None or c.get("group") in groups]
    if not changes:
        return ""
    return "Changes (a step minus the step before it):\n" + "".join(
        f"- {c['change']}, {c['dataset']}, {c['training']}: {change_summary(c['before'], c['after'])}\n"
        for c in changes)


def to_markdown(meta: dict, rows: list[dict]) -> str:
    """The whole table as ``levers.md``: provenance, every row, l-DAE minus raw pixels per dataset, and
    every change over seeds."""
    table = markdown_table(["lever", "dataset", "what", "linear probe %", "kNN %", "train s", "note"],
                           [[r["group"], r["dataset"], r["what"], r["accuracy"], r["knn"],
                             None if r["train_seconds"] is None else f"{r['train_seconds']:.0f}", r["note"]]
                            for r in rows])
    gaps = ", ".join(f"{gap:+.2f}" + (" points" if i == 0 else "") + f" on {dataset}"
                     for i, (dataset, gap) in enumerate(meta["ldae_minus_raw"].items()))
    note = f"Note: {meta['note']}.\n\n" if meta.get("note") else ""
    return (f"Budget `{meta.get('label', meta['budget'])}`, seed {meta['seed']}, {meta['device']}, "
            f"commit `{meta['commit']}`, {meta['created']}, {meta['wall_seconds'] / 60:.1f} min; "
            f"`{meta['command'].strip()}`.\n\n" + note + table
            + f"\nl-DAE minus raw pixels: {gaps}.\n" + changes_markdown(meta))
