"""The budget search: at which training does the paper's story show beyond seed noise, and at what cost?

A candidate is the lecture budget with some fields overridden (``{"steps": 300, "batch_size": 256}``). For
each, ``scripts/budget_search.py`` reads (or, with ``--run``, trains) the 3-seed trajectory report and the
pixel-space DAE over the same seeds, and :func:`candidate_row` scores it by what the series needs a
student to see:

- **signed changes beyond noise**: of the 11 steps where the paper's change has a sign (step 11's is 0.0),
  how many of ours take the paper's sign *and* exceed seed noise (the report's test,
  :func:`stats.noise_bar`: two standard errors of the difference of two means);
- **l-DAE above the pixel-space DAE** and **above raw pixels**, each beyond noise;
- **training minutes per seed**: the denoisers' training time of one seed's 13 runs, one process each (the
  runs record it even when the report read them from the cache), the cost that candidates are ranked by;
- **wall minutes per seed**: the report's wall time over its seeds, everything included (CNN, tokenizers,
  features, probes, sampling), with the workers it ran; a lower bound when some runs came from the cache.

The cheapest candidate that reaches :data:`TARGET` signed changes is the one to make the lecture preset.
"""

from __future__ import annotations

from .cache import RESULTS_DIR
from .stats import mean_std, noise_bar
from .tables import fmt, markdown_table

TARGET = 7  # of the 11 signed changes: what the default budget must show beyond noise
GOAL_MINUTES = 30  # wall minutes for one seed of the 13 steps from an empty cache on 2 CPU cores
SIGNED = 11  # the paper's 12 changes less step 11's 0.0


def signed_beyond_noise(report: dict) -> list[str]:
    """The keys of the steps whose change has the paper's sign and is beyond seed noise."""
    return [r["key"] for r in report["steps"] if r.get("same_sign") and r.get("within_noise") is False]


def beyond(before: list[float], after: list[float]) -> dict:
    """after - before as means over seeds, the noise bar of that difference, and whether it is beyond it
    (None with one value on either side: no bar)."""
    (a, a_std), (b, b_std) = mean_std(before), mean_std(after)
    bar = noise_bar(a_std, b_std, min(len(before), len(after)))
    return {"delta": b - a, "noise": bar, "beyond": None if bar is None else abs(b - a) > bar}


def candidate_row(name: str, report: dict | None, pixel_dae: list[float] | None, source: str = "") -> dict:
    """One row of the search table from a trajectory report (None: not run yet) and the pixel-space DAE's
    probes over the report's seeds (None or []: not measured)."""
    row = {"candidate": name, "source": source, "seeds": None, "signed_beyond_noise": None, "keys": [],
           "ldae_minus_raw": None, "ldae_minus_pixel_dae": None, "minutes_per_seed": None, "cached_runs": None,
           "train_minutes_per_seed": None, "workers": None,
           "commit": None}
    if report is None:
        return row
    meta, steps = report["meta"], report["steps"]
    ldae = next((r for r in steps if r["key"] == "predict_image"), None)
    n = len(meta["seeds"])
    trained, total = meta.get("runs_trained"), n * len(steps)
    row.update(seeds=n, keys=signed_beyond_noise(report), commit=meta.get("commit"),
               minutes_per_seed=meta["wall_seconds"] / 60 / n, workers=meta.get("workers"),
               train_minutes_per_seed=sum(r["train_seconds"] for r in steps) / 60 / n,
               cached_runs=None if trained is None else max(0, total - trained))
    row["signed_beyond_noise"] = len(row["keys"]) if n > 1 else None
    if ldae is not None:
        raw = report["raw_pixels"]["linear"]  # deterministic: no seeds, so its noise is the l-DAE's alone
        row["ldae_minus_raw"] = beyond([raw] * n, ldae["accuracies"])
        if pixel_dae:
            row["ldae_minus_pixel_dae"] = beyond(list(pixel_dae), ldae["accuracies"])
    return row


def _versus(entry: dict | None) -> str:
    if entry is None:
        return "not measured"
    verdict = "" if entry["beyond"] is None else (" (beyond noise)" if entry["beyond"] else " (within noise)")
    return fmt(entry["delta"], 2, signed=True) + verdict


def to_markdown(rows: list[dict], dataset: str) -> str:
    """The search table: one row per candidate, then which candidate is the cheapest to reach TARGET."""
    table = markdown_table(
        ["candidate", "seeds", f"paper's sign, beyond noise (of {SIGNED})", "l-DAE − pixel DAE", "l-DAE − raw pixels",
         "training min per seed", "wall min per seed", "commit", "report"],
        [[r["candidate"], r["seeds"] or "not run",
          "–" if r["signed_beyond_noise"] is None else f"**{r['signed_beyond_noise']}**"
          + (f" ({', '.join(r['keys'])})" if r["keys"] else ""),
          _versus(r["ldae_minus_pixel_dae"]), _versus(r["ldae_minus_raw"]),
          fmt(r["train_minutes_per_seed"], 1, empty="–"),
          "–" if r["minutes_per_seed"] is None else ("≥ " if r["cached_runs"] else "")
          + f"{r['minutes_per_seed']:.1f}" + (f" ({r['workers']} workers" if r["workers"] else " (")
          + (f", {r['cached_runs']} runs cached)" if r["cached_runs"] else ")"),
          r["commit"] or "–", r["source"] or "–"] for r in rows])
    reached = [r for r in rows if (r["signed_beyond_noise"] or 0) >= TARGET]
    if reached:
        best = min(reached, key=lambda r: r["train_minutes_per_seed"])
        verdict = (f"Cheapest candidate with at least {TARGET} of {SIGNED} signed changes beyond noise: "
                   f"**{best['candidate']}**, {best['train_minutes_per_seed']:.1f} min of training per seed.")
    else:
        top = max((r for r in rows if r["signed_beyond_noise"] is not None),
                  key=lambda r: r["signed_beyond_noise"], default=None)
        verdict = (f"No candidate reaches {TARGET} of {SIGNED}" + (
            f"; the best, **{top['candidate']}**, has {top['signed_beyond_noise']}, "
            f"{TARGET - top['signed_beyond_noise']} short." if top else "."))
    timed = [r for r in rows if r["minutes_per_seed"] is not None and r["cached_runs"] == 0]
    costs = "".join(
        f"- {r['candidate']}: {r['signed_beyond_noise']} of {SIGNED} at {r['minutes_per_seed']:.1f} wall minutes a "
        "seed from an empty cache, " + ("within" if r["minutes_per_seed"] <= GOAL_MINUTES else
                                        f"{r['minutes_per_seed'] - GOAL_MINUTES:.1f} over")
        + f" the {GOAL_MINUTES}-minute goal.\n" for r in timed)
    verdict += "\n" + (f"\nTimed from an empty cache:\n{costs}" if costs else "")
    return (f"Dataset `{dataset}`; each candidate is the lecture budget with the fields it names. Training minutes: "
            "the 13 denoisers of one seed, one process each, as their runs recorded them.\n\n"
            f"{table}\n{verdict}")


def shipped_markdown(path=None) -> str:
    """The shipped search table (``results/search/budget_search.md``, written by scripts/budget_search.py),
    or a line saying how to make it."""
    path = RESULTS_DIR / "search" / "budget_search.md" if path is None else path
    if not path.is_file():
        return "No budget search is shipped (`results/search/budget_search.md`): `make search` makes it."
    return path.read_text()


__all__ = ["GOAL_MINUTES", "SIGNED", "TARGET", "beyond", "candidate_row", "shipped_markdown", "signed_beyond_noise",
           "to_markdown"]
