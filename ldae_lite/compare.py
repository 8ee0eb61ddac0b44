"""A trajectory report read against the paper, against raw pixels, and against other reports: what the
numbers say, computed from them (nothing here is asserted by hand), as Markdown.
"""

from __future__ import annotations

from .recipes import TRAJECTORY
from .stats import rank_correlation
from .tables import fmt, fmt_mean_std, markdown_table

# The paper's three stages (Tab. 1-3): (name, the step before the stage, its last step).
STAGES = (("Stage 1 (Tab. 1): reorient the DDM", "dit_baseline", "linear_gamma2"),
          ("Stage 2 (Tab. 2): deconstruct the tokenizer", "linear_gamma2", "patch_pca"),
          ("Stage 3 (Tab. 3): toward a classical DAE", "patch_pca", "predict_image"))


def versus_raw_pixels(reports) -> str:
    """One row per report: its dataset, the raw-pixel probe, the first legitimate step and l-DAE (the last
    step), and l-DAE minus raw pixels: does the learned representation beat the pixels it was learned from?
    reports: iterable of (source, report)."""
    rows = []
    for _, rep in reports:
        m, by_key = rep["meta"], {r["key"]: r for r in rep["steps"]}

        def ours(key):
            r = by_key.get(key)
            return None if r is None else fmt_mean_std(r["mean"], r.get("std"))
        last = by_key.get(TRAJECTORY[-1].key)
        raw = rep["raw_pixels"]["linear"]
        rows.append([m["dataset"], m["budget"], len(m["seeds"]), f"{raw:.2f}", ours("no_perceptual"),
                     ours(TRAJECTORY[-1].key), fmt(None if last is None else last["mean"] - raw, 2, signed=True)])
    return markdown_table(["dataset", "budget", "seeds", "raw pixels %", "first legitimate step %", "l-DAE %",
                           "l-DAE − raw pixels"], rows)


def changes_side_by_side(reports) -> str:
    """Each step's change (Δ to the step before it) in several reports, beside the paper's: does an effect
    appear, or turn to the paper's sign, with more training (or on another dataset)? reports: iterable of
    (column name, report). A cell reads "+0.77 (paper's sign, beyond noise)"; "–" where a report lacks the
    step or the one before it.
    The last row counts, per report, the changes with the paper's sign and beyond seed noise."""
    reports = list(reports)
    by_key = [{r["key"]: r for r in rep["steps"]} for _, rep in reports]

    def cell(keys, i):  # the change into step i (1-based), when the report has step i and the one before
        r = keys.get(TRAJECTORY[i - 1].key)
        if r is None or "delta" not in r or TRAJECTORY[i - 2].key not in keys:
            return "–"
        sign = {True: "paper's sign", False: "opposite sign", None: "paper: 0"}[r.get("same_sign")]
        noise = {True: ", within noise", False: ", beyond noise"}.get(r.get("within_noise"), "")
        return f"{r['delta']:+.2f} ({sign}{noise})"

    rows = []
    for i, step in enumerate(TRAJECTORY[1:], 2):
        rows.append([i, step.label, f"{step.paper_accuracy - TRAJECTORY[i - 2].paper_accuracy:+.1f}"]
                    + [cell(keys, i) for keys in by_key])
    rows.append(["", "paper's sign and beyond noise", ""]
                + [f"{sum(1 for r in keys.values() if r.get('same_sign') and r.get('within_noise') is False)} of "
                   f"{sum(1 for r in keys.values() if r.get('same_sign') is not None)}" for keys in by_key])
    return markdown_table(["#", "step", "Δ paper"] + [f"Δ {name}" for name, _ in reports], rows)


def reproduction_summary(report: dict) -> str:
    """What the numbers of ``report`` say, against the paper's, as Markdown bullets (computed, not asserted)."""
    lines = _caveats(report) + _signs_and_noise(report) + _stages(report) + _overall(report)
    return "\n".join(f"* {line}" for line in lines) + "\n"


def _caveats(report: dict) -> list[str]:
    """What the reader must know first: smoke numbers claim nothing; a partial report compares shown steps."""
    out, rows = [], report["steps"]
    if report["meta"]["budget"] == "smoke":
        out.append("These are **smoke** numbers (models trained for seconds): they show that every step runs, "
                   "not whether the paper's effects hold. Read a lecture or full report for that.")
    if len(rows) < len(TRAJECTORY):
        out.append(f"This report holds {len(rows)} of the {len(TRAJECTORY)} steps; each Δ compares a step with "
                   "the previous one *shown*.")
    return out


def _signs_and_noise(report: dict) -> list[str]:
    """How many of our changes have the paper's sign, and how many are within seed noise."""
    out, rows, seeds = [], report["steps"], report["meta"]["seeds"]
    compared = [r for r in rows if r.get("same_sign") is not None]
    agree = [r["key"] for r in compared if r["same_sign"]]
    disagree = [r["key"] for r in compared if not r["same_sign"]]
    if compared:
        out.append(f"Our change has the paper's sign in **{len(agree)} of {len(compared)}** steps"
                   + (f" ({', '.join(agree)})" if agree else "") + "; the opposite sign in "
                   f"**{len(disagree)}**" + (f" ({', '.join(disagree)})" if disagree else "") + ".")
    for r in rows:
        if "same_sign" in r and r["same_sign"] is None:
            out.append(f"{r['label']}: the paper measured no change (Δ {r['paper_delta']:+.1f}), so there is no "
                       f"sign to agree with; ours moved {r['delta']:+.2f}.")
    noise = [r for r in rows if r.get("within_noise") is not None]
    if noise:
        small = [r["key"] for r in noise if r["within_noise"]]
        out.append(f"{len(small)} of {len(noise)} of our changes are within two standard errors of zero "
                   f"(seed noise, {len(seeds)} seeds)" + (f": {', '.join(small)}" if small else "") + ".")
    elif compared:
        out.append(f"With {len(seeds)} seed(s) there is no error bar: a change smaller than the spread between "
                   "seeds cannot be told from noise (`make trajectory SEEDS=\"0 1 2\"` measures it).")
    return out


def _stages(report: dict) -> list[str]:
    """Each of the paper's stages shown in full, and the first to the last legitimate entry: ours and the
    paper's change over it."""
    out, rows = [], report["steps"]
    by_key = {r["key"]: r for r in rows}
    for name, first, last in STAGES:
        if first in by_key and last in by_key:
            a, b = by_key[first], by_key[last]
            ours, paper = b["mean"] - a["mean"], b["paper"] - a["paper"]
            verdict = "same direction" if ours * paper > 0 else "opposite direction"
            out.append(f"{name}: ours {ours:+.2f}, paper {paper:+.1f} ({verdict}).")
    legit = [r for r in rows if r["legitimate"]]
    if len(legit) >= 2:
        a, b = legit[0], legit[-1]
        out.append(f"From the first legitimate entry shown ({a['label']}) to the last ({b['label']}): ours "
                   f"{b['mean'] - a['mean']:+.2f}, paper {b['paper'] - a['paper']:+.1f}.")
    return out


def _overall(report: dict) -> list[str]:
    """The ordering of the steps against the paper's, and the last step against raw pixels."""
    out, rows = [], report["steps"]
    rho = rank_correlation([r["mean"] for r in rows], [r["paper"] for r in rows])
    if rho is not None:
        out.append(f"Rank correlation between our {len(rows)} numbers and the paper's: {rho:+.2f} "
                   "(+1: the same ordering of steps, 0: unrelated).")
    last, raw = rows[-1], report["raw_pixels"]["linear"]
    out.append(f"The last step shown ({last['label']}) reaches {last['mean']:.2f}% against {raw:.2f}% for a linear "
               f"probe on raw pixels ({last['mean'] - raw:+.2f}).")
    return out
