"""Numbers over seeds: mean and spread, when a change is within seed noise, and rank correlation.

A probe accuracy moves by a fraction of a point from one seed to the next. Every comparison in the
reports (a step against the step before it, ours against the paper's ordering) goes through here, so
"within noise" means the same thing in every table.
"""

from __future__ import annotations

import math
import statistics

import torch

from .tables import fmt_mean_std


def mean_std(values):
    """(mean, sample std) of the values that are not None; std None for one value, both None for none."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def noise_bar(std_a, std_b, n: int):
    """Two standard errors of a difference of two means over n seeds each: a delta smaller than this is
    within noise. std_a, std_b: the seeds' sample standard deviations (None for one seed: no bar)."""
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
    return (f"{d:+.2f} ± {d_std:.2f} ({len(before)} seeds: {fmt_mean_std(a, a_std)} -> {fmt_mean_std(b, b_std)}); "
            f"{'within' if abs(d) <= bar else 'beyond'} noise (two standard errors: {bar:.2f})")


def _ranks(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):  # ties share their average rank
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks


def rank_correlation(a, b) -> float | None:
    """Spearman's rank correlation of two equally long sequences (None when it is undefined)."""
    if len(a) != len(b):
        raise ValueError(f"sequences of different lengths {len(a)} and {len(b)}")
    if len(a) < 3:
        return None
    ra, rb = torch.tensor(_ranks(list(a))), torch.tensor(_ranks(list(b)))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = (ra.norm() * rb.norm()).item()
    return None if denom == 0 else float((ra @ rb).item() / denom)
