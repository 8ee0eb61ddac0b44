"""A number measured live in a notebook, beside the shipped reference, beside the paper.

A notebook trains a step of the trajectory on the reader's machine and gets one probe accuracy. Alone,
that number says little. :func:`beside_reference` puts it beside

* the **shipped reference**: the same step in the trajectory report shipped with the repository for the
  same dataset and budget (``results/<budget>/trajectory_<dataset>_<budget>.json``), as mean ± std over
  its seeds, with the reference's change from the step before;
* the **paper's** number and change (:mod:`ldae_lite.paper`);

and says in one line whether the live run falls **inside** the reference's spread between seeds:

* one live run is inside when it lies within the reference's mean ± 2 std (the std over the reference's
  seeds). With three reference seeds that std is itself uncertain, so this is a yardstick, not a test;
* several live runs (seeds) are inside when the two means differ by at most two standard errors of their
  difference: the trajectory report's test for "within noise" (:func:`stats.noise_bar`).

Outside means the seed alone does not explain the difference: the code, the machine (threads, bf16) or
the data differ from the reference's. :func:`change_beside_reference` does the same for a *change*, where a
notebook measures two steps: the live change, the reference's change over the same seeds (its spread is
that of the per-seed changes), and the paper's.

:func:`side_reference` shows a notebook's side experiment (a sweep, a pixel-space DAE, one noise level)
from the shipped levers table (:mod:`ldae_lite.levers`) when the notebook does not train it live.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

from . import budgets as budgets_mod
from . import data, levers
from .cache import RESULTS_DIR
from .paper import TRAJECTORY as PAPER_STEPS
from .paper import step as paper_step
from .recipes import STEPS
from .report import find_reports
from .stats import change_summary, mean_std
from .tables import fmt_mean_std

_ORDER = [s.key for s in PAPER_STEPS]  # the 13 steps in the paper's order


# --------------------------------------------------------------------------------------------------
# the shipped reference
# --------------------------------------------------------------------------------------------------
def reference_report(dataset: str, budget=None, folders=None):
    """(path, report) of the shipped trajectory report for ``dataset`` at ``budget``, or None.

    A preset budget is compared with the preset's report, never with one whose budget overrides a field
    (``--train-steps 1200``); an overridden budget only with a report of the same overrides.
    folders: where to look (default the repository's ``results/``, what is shipped with it).
    """
    budget = budgets_mod.get_budget(budget)
    wanted = budgets_mod.overrides(budget)
    for path, rep in find_reports(dataset, [RESULTS_DIR] if folders is None else folders):
        meta = rep["meta"]
        if (meta.get("dataset") == dataset and meta.get("budget") == budget.name
                and (meta.get("overrides") or {}) == wanted):
            return path, rep
    return None


def _no_reference(dataset: str, budget, folders) -> str:
    """The line that says no reference is shipped for this dataset and budget, and where one is."""
    where = [RESULTS_DIR] if folders is None else folders
    shipped = [rep["meta"].get("label") or rep["meta"]["budget"] for _, rep in find_reports(dataset, where)]
    if shipped:
        return (f"no shipped reference for budget `{budgets_mod.label(budget)}` on `{dataset}` (shipped for it: "
                + ", ".join(f"`{b}`" for b in shipped) + f"); run at `LDAE_BUDGET={shipped[0].split(',')[0]}` "
                "to compare")
    others = [d for d in data.DATASETS if find_reports(d, where)]
    return (f"no shipped reference for `{dataset}` at any budget (shipped for: "
            + (", ".join(f"`{d}`" for d in others) or "none") + "; `LDAE_DATASET` switches)")


def _shown(path) -> str:
    """A report's path as the reader finds it: relative to the repository when it lies inside."""
    path = Path(path)
    try:
        return str(path.relative_to(RESULTS_DIR.parent))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------------
# what was measured live
# --------------------------------------------------------------------------------------------------
def _live_values(live, key: str, dataset: str, budget) -> tuple[list[float], list]:
    """(accuracies, seeds) of ``live``: a probe accuracy in %, an ``experiment.Result``, or a list of them
    (one per seed). A bare number has seed None. ValueError for anything else, or for a Result of another
    step, dataset or budget."""
    items = list(live) if isinstance(live, (list, tuple)) else [live]
    if not items:
        raise ValueError("live=[]: give a probe accuracy in %, an experiment.Result, or a list of them")
    values, seeds = [], []
    for item in items:
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            value, seed = float(item), None
        elif hasattr(item, "probe_accuracy"):
            _check_result(item, key, dataset, budget)
            value, seed = float(item.probe_accuracy), item.seed
        else:
            raise ValueError(f"live={item!r}: expected a probe accuracy in %, an experiment.Result, or a list "
                             "of them")
        if not 0.0 <= value <= 100.0:
            raise ValueError(f"live accuracy {value!r} must be a percentage in [0, 100]")
        values.append(value)
        seeds.append(seed)
    repeated = sorted({s for s in seeds if s is not None and seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"live results repeat seeds {repeated}: give one Result per seed")
    return values, seeds


def _check_result(result, key: str, dataset: str, budget) -> None:
    """ValueError when a Result is not of step ``key``, ``dataset`` and ``budget``: it would be read
    against the wrong reference."""
    if result.dataset != dataset:
        raise ValueError(f"a Result on dataset {result.dataset!r} beside the reference for {dataset!r}: "
                         f"pass dataset={result.dataset!r}")
    if result.budget != budget.name:
        raise ValueError(f"a Result at budget {result.budget!r} beside the reference for {budget.name!r}: "
                         f"pass the budget it ran at")
    expected = dataclasses.asdict(STEPS[key].recipe)
    differ = sorted(k for k in set(expected) | set(result.recipe) if expected.get(k) != result.recipe.get(k))
    if differ:
        raise ValueError(f"the Result's recipe is not step {key!r}'s: it differs in {differ}")


def _seeds_text(seeds) -> str:
    known = [s for s in seeds if s is not None]
    if not known:
        return ""
    return f"seed {known[0]}" if len(known) == 1 else f"seeds {', '.join(map(str, known))}"


# --------------------------------------------------------------------------------------------------
# inside or outside the reference's spread
# --------------------------------------------------------------------------------------------------
def inside_line(live: list[float], reference: list[float], change: bool = False) -> str:
    """One line: does ``live`` (one value or one per seed) fall inside the spread of ``reference`` (one
    value per reference seed)? What "inside" means is in the module's docstring, and in the line.
    change: the values are changes (a step minus the one before, per seed), printed with their sign."""
    sign, what = ("+", "live change") if change else ("", "live run")
    ref_mean, ref_std = mean_std(reference)
    live_mean, live_std = mean_std(live)
    if ref_std is None:
        return (f"**no spread to compare with**: the reference has one seed (live minus reference "
                f"{live_mean - ref_mean:+.2f})")
    if len(live) == 1:
        lo, hi = ref_mean - 2 * ref_std, ref_mean + 2 * ref_std
        inside = lo <= live_mean <= hi
        where = "within" if inside else ("above" if live_mean > hi else "below")
        spread = "its per-seed changes" if change else "its seeds"
        return (f"**{'inside' if inside else 'outside'}** the reference's spread: the {what} "
                f"({live_mean:{sign}.2f}) lies {where} the reference's mean ± 2 std over {spread} "
                f"({lo:{sign}.2f} to {hi:{sign}.2f}, {len(reference)} seeds)"
                + ("" if inside else "; more than the seed alone usually moves it"))
    # two standard errors of the difference of the means: stats.noise_bar, for unequal numbers of seeds
    bar = 2.0 * math.sqrt((live_std or 0.0) ** 2 / len(live) + ref_std**2 / len(reference))
    gap = live_mean - ref_mean
    inside = abs(gap) <= bar
    return (f"**{'inside' if inside else 'outside'}** the reference's spread: the mean of the {len(live)} live "
            f"seeds differs from the reference's by {gap:+.2f}, {'within' if inside else 'beyond'} two standard "
            f"errors of the difference ({bar:.2f})")


# --------------------------------------------------------------------------------------------------
# one step, and one change
# --------------------------------------------------------------------------------------------------
def _paper_line(step_key: str) -> str:
    """The paper's number for a step and its change from the step before ("paper: 63.6 %; change from step 9: +1.2")."""
    i = _ORDER.index(step_key)
    p, prev = PAPER_STEPS[i], PAPER_STEPS[i - 1] if i else None
    return f"paper: {p.accuracy:.1f} %" + ("" if prev is None else f"; change from step {i}: "
                                          f"{p.accuracy - prev.accuracy:+.1f}")


def beside_reference(step_key: str, live, budget=None, dataset: str | None = None, *, folders=None) -> str:
    """Markdown: the live probe accuracy of one trajectory step beside the shipped reference (mean ± std
    over its seeds, and its change from the previous step), beside the paper's number and change, and one
    line saying whether the live run falls inside the reference's spread (or that no reference is shipped
    for this dataset and budget).

    live: a probe accuracy in %, an ``experiment.Result``, or a list of them (one per seed).
    budget: a Budget or its name (None: ``$LDAE_BUDGET``); dataset: None reads ``$LDAE_DATASET``.
    folders: where the reference is looked for (default ``results/``).
    """
    p = paper_step(step_key)
    budget, dataset = budgets_mod.get_budget(budget), data.dataset_name(dataset)
    values, seeds = _live_values(live, step_key, dataset, budget)
    i = _ORDER.index(step_key)
    prev = PAPER_STEPS[i - 1] if i else None
    head = f"**Step {i + 1}, {p.label}** (budget `{budgets_mod.label(budget)}`, dataset `{dataset}`)\n\n"
    found = reference_report(dataset, budget, folders)
    row = None if found is None else next((r for r in found[1]["steps"] if r["key"] == step_key), None)
    accs = [] if row is None else row.get("accuracies") or [row["mean"]]
    ref_seeds = [] if found is None else found[1]["meta"]["seeds"]
    # the reference's own number for the live seeds: the same seed, code and machine give the same number
    seed_notes = [_seeds_text(seeds)] + [f"the reference's seed {s}: {a:.2f}" for s, a in zip(ref_seeds, accs)
                                         if s in seeds]
    seed_text = "; ".join(x for x in seed_notes if x)
    lines = [f"live: {fmt_mean_std(*mean_std(values))} %" + (f" ({seed_text})" if seed_text else "")]
    paper = _paper_line(step_key)
    if row is None:
        missing = (_no_reference(dataset, budget, folders) if found is None
                   else f"the shipped reference `{_shown(found[0])}` has no step `{step_key}`")
        return head + "".join(f"- {x}\n" for x in lines + [paper, f"**no reference**: {missing}"])
    by_key = {r["key"]: r for r in found[1]["steps"]}
    ref_change = ""
    if prev is not None and prev.key in by_key:
        ref_change = (f"; change from step {i}: {row['mean'] - by_key[prev.key]['mean']:+.2f}"
                      + {True: " (within noise)", False: " (beyond noise)"}.get(row.get("within_noise"), ""))
    lines += [f"reference: {fmt_mean_std(row['mean'], row.get('std'))} % over seeds "
              f"{', '.join(map(str, ref_seeds))} (`{_shown(found[0])}`){ref_change}",
              paper, inside_line(values, accs)]
    return head + "".join(f"- {x}\n" for x in lines)


def change_beside_reference(before_key: str, after_key: str, live_before, live_after, budget=None,
                            dataset: str | None = None, *, folders=None) -> str:
    """Markdown: the live change from step ``before_key`` to step ``after_key`` beside the shipped
    reference's change over the same seeds (mean ± std of the per-seed changes, within or beyond noise),
    beside the paper's change, and one line saying whether the live change falls inside the spread of
    the reference's per-seed changes.

    live_before, live_after: each a probe accuracy in %, a Result, or a list of them, one per seed in the
    same order (Results are paired by seed). budget, dataset, folders: as :func:`beside_reference`.
    """
    p, q = paper_step(before_key), paper_step(after_key)
    i, j = _ORDER.index(before_key), _ORDER.index(after_key)
    if i >= j:
        raise ValueError(f"before_key={before_key!r} (step {i + 1}) must come before after_key={after_key!r} "
                         f"(step {j + 1}) in the trajectory")
    budget, dataset = budgets_mod.get_budget(budget), data.dataset_name(dataset)
    (a, sa), (b, sb) = (_live_values(v, k, dataset, budget) for v, k in ((live_before, before_key),
                                                                          (live_after, after_key)))
    if len(a) != len(b) or sa != sb:
        raise ValueError(f"live_before and live_after must hold the same seeds in the same order "
                         f"({_seeds_text(sa) or len(a)} against {_seeds_text(sb) or len(b)})")
    changes = [y - x for x, y in zip(a, b)]
    seed_text = _seeds_text(sa)
    head = (f"**Step {i + 1} → step {j + 1}: {q.label}** (budget `{budgets_mod.label(budget)}`, "
            f"dataset `{dataset}`)\n\n")
    change, change_std = mean_std(changes)
    lines = [f"live change: {change:+.2f}" + ("" if change_std is None else f" ± {change_std:.2f}")
             + f" ({fmt_mean_std(*mean_std(a))} → "
             f"{fmt_mean_std(*mean_std(b))} %" + (f", {seed_text}" if seed_text else "") + ")",
             f"paper change: {q.accuracy - p.accuracy:+.1f} ({p.accuracy:.1f} → {q.accuracy:.1f} %)"]
    found = reference_report(dataset, budget, folders)
    by_key = {} if found is None else {r["key"]: r for r in found[1]["steps"]}
    if found is None or not {before_key, after_key} <= by_key.keys():
        missing = (_no_reference(dataset, budget, folders) if found is None
                   else f"the shipped reference `{_shown(found[0])}` lacks step `{before_key}` or `{after_key}`")
        return head + "".join(f"- {x}\n" for x in lines + [f"**no reference**: {missing}"])
    before, after = (by_key[k].get("accuracies") or [by_key[k]["mean"]] for k in (before_key, after_key))
    lines.insert(1, f"reference change (`{_shown(found[0])}`): {change_summary(before, after)}")
    lines.append(inside_line(changes, [y - x for x, y in zip(before, after)], change=True))
    return head + "".join(f"- {x}\n" for x in lines)


def shipped_step(step_key: str, budget=None, dataset: str | None = None, *, flag: str = "LIVE_ALL_STEPS",
                 folders=None) -> str:
    """Markdown for a step a notebook shows without training it (its ``flag`` is False): the shipped
    reference's accuracy over its seeds and its change from the step before, beside the paper's."""
    p = paper_step(step_key)
    budget, dataset = budgets_mod.get_budget(budget), data.dataset_name(dataset)
    i = _ORDER.index(step_key)
    head = (f"**Step {i + 1}, {p.label}: shipped, not trained here** (`{flag} = False`; set it to True to train "
            f"it here)\n\n")
    paper = _paper_line(step_key)
    found = reference_report(dataset, budget, folders)
    by_key = {} if found is None else {r["key"]: r for r in found[1]["steps"]}
    if step_key not in by_key:
        return head + f"- {paper}\n- **no reference**: {_no_reference(dataset, budget, folders)}\n"
    row = by_key[step_key]
    lines = [f"reference: {fmt_mean_std(row['mean'], row.get('std'))} % over seeds "
             f"{', '.join(map(str, found[1]['meta']['seeds']))} (`{_shown(found[0])}`)"]
    if i and PAPER_STEPS[i - 1].key in by_key:
        before = by_key[PAPER_STEPS[i - 1].key]
        lines.append(f"reference change from step {i}: {change_summary(before['accuracies'], row['accuracies'])}")
    return head + "".join(f"- {x}\n" for x in lines + [paper])


def reference_means(budget=None, dataset: str | None = None, folders=None) -> dict[str, float]:
    """{step key: mean probe accuracy %} of the shipped reference for ``dataset`` at ``budget``; {} if none."""
    budget, dataset = budgets_mod.get_budget(budget), data.dataset_name(dataset)
    found = reference_report(dataset, budget, folders)
    return {} if found is None else {r["key"]: r["mean"] for r in found[1]["steps"]}


def step_markdown(before_key: str | None, key: str, results: dict, budget=None, dataset: str | None = None, *,
                  flag: str = "LIVE_ALL_STEPS", folders=None) -> str:
    """Markdown for step ``key`` of a notebook that trains some of its steps (``results``: {step key: Result}
    of those trained): the live change from ``before_key`` beside the reference's when both were trained here,
    the live step beside its reference when only ``key`` was, the shipped step when ``key`` was not."""
    if key not in results:
        return shipped_step(key, budget, dataset, flag=flag, folders=folders)
    if before_key in results:
        return change_beside_reference(before_key, key, results[before_key], results[key], budget, dataset,
                                       folders=folders)
    return beside_reference(key, results[key], budget, dataset, folders=folders)


def live_or_shipped(keys, results: dict, budget=None, dataset: str | None = None, folders=None) -> dict:
    """{step key: probe accuracy %} for ``keys``: the live run's where the notebook trained it (``results``),
    else the shipped reference's mean; a step in neither is left out."""
    shipped = reference_means(budget, dataset, folders)
    ours = {k: results[k].probe_accuracy if k in results else shipped.get(k) for k in keys}
    return {k: acc for k, acc in ours.items() if acc is not None}


# --------------------------------------------------------------------------------------------------
# side experiments: the shipped levers table instead of training
# --------------------------------------------------------------------------------------------------
def _side(group: str, dataset: str, budget: str, folder=None):
    """(path, meta, rows) of ``group`` for ``dataset``: from the side-experiment table of the default pair
    (levers.SIDE_FILE) when it has them, else from the levers table; None when neither has."""
    for file in (levers.SIDE_FILE, levers.FILE):
        path, table = levers.read(budget, folder, file)
        rows = [] if table is None else [r for r in table["rows"] if r["group"] == group and r["dataset"] == dataset]
        if rows:
            meta = table["meta"]
            return path, {**meta, "changes": [c for c in meta.get("changes", []) if c.get("dataset") == dataset
                                              and c.get("group") == group]}, rows
    return None


def side_rows(group: str, dataset: str, budget="lecture", folder=None):
    """(meta, rows) of the shipped side-experiment rows of ``group`` for ``dataset`` (its changes too): from
    ``side_experiments.json`` (the default pair, over seeds) or else ``levers.json``; None when neither has."""
    found = _side(group, dataset, budget if isinstance(budget, str) else budget.name, folder)
    return None if found is None else found[1:]


def _side_markdown(found, group: str, dataset: str, name: str, folder) -> str:
    """:func:`_side`'s rows as Markdown with the file they come from, or the line saying none are shipped."""
    if found is None:
        where = RESULTS_DIR / name if folder is None else Path(folder)
        return (f"no group '{group}' rows for `{dataset}` are shipped (`{_shown(where / levers.SIDE_FILE)}`, "
                f"`{_shown(where / levers.FILE)}`)")
    path, meta, rows = found
    return f"From `{_shown(path)}`. " + levers.group_markdown(meta, rows)


def shipped_table(group: str, dataset: str, budget="lecture", folder=None) -> str:
    """Markdown: the shipped rows of ``group`` for ``dataset``, with the file and the command that made
    them; or a line saying that none are shipped."""
    name = budget if isinstance(budget, str) else budget.name
    return _side_markdown(_side(group, dataset, name, folder), group, dataset, name, folder)


def side_reference(group: str, dataset: str, budget="lecture", folder=None) -> str:
    """Markdown for a side experiment that is not trained live (``LIVE_SIDE_RUNS = False``): the shipped
    rows (:func:`shipped_table`), or a line saying that none are shipped and how to train them here."""
    name = budget if isinstance(budget, str) else budget.name
    found = _side(group, dataset, name, folder)
    text = _side_markdown(found, group, dataset, name, folder)
    if found is None:
        return f"**Not trained here, and not shipped**: {text}. Set `LIVE_SIDE_RUNS = True` (top of the notebook) " \
               "to train it here."
    return "**Shipped, not trained here** (`LIVE_SIDE_RUNS = False`; set it to True to train it here). " + text


def shipped_seeds(group: str, dataset: str, budget="lecture", folder=None, field: str = "d",
                  contains: str = "") -> dict[int, list[float]]:
    """{value: linear probe % per seed} of the shipped rows of ``group`` for ``dataset`` whose description
    names ``field = value`` and contains ``contains`` ("probe at t = 10, clean input" with field "t" and
    contains "clean": {10: [...]}), sorted by value; {} when none are shipped. A row of one seed, or of an
    older table that kept only the mean, gives a list of one."""
    found = side_rows(group, dataset, budget, folder)
    pattern = re.compile(rf"\b{re.escape(field)} = (\d+)\b")
    out = {}
    for row in [] if found is None else found[1]:
        m = pattern.search(row["what"])
        if m and contains in row["what"]:
            out[int(m.group(1))] = [float(a) for a in row.get("accuracies") or [row["accuracy"]]]
    return dict(sorted(out.items()))


def shipped_sweep(group: str, dataset: str, budget="lecture", folder=None, field: str = "d") -> dict[int, float]:
    """{value: linear probe %} of the shipped rows of ``group`` for ``dataset`` that name ``field = value``
    in their description ("patch PCA, d = 16 of D = 192": {16: ...}), sorted; {} when none are shipped.
    Where a row ran over several seeds its accuracy is their mean (its note gives the spread)."""
    return {v: mean_std(accs)[0] for v, accs in shipped_seeds(group, dataset, budget, folder, field).items()}
