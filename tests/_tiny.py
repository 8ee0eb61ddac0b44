"""What several test modules share: a budget that trains in a second, and a trajectory report made up
from given numbers (no training)."""

import dataclasses

from ldae_lite import budgets
from ldae_lite.recipes import TRAJECTORY

TINY = dataclasses.replace(budgets.get_budget("smoke"), name="tiny", steps=6, train_subset=256, probe_train=256,
                           probe_test=128, tokenizer_steps=4, cnn_steps=4, fid_samples=32, sample_steps=3,
                           probe_epochs=3, width=32, depth=2, heads=2)


def fake_report(means, stds=None, budget="lecture") -> dict:
    """A trajectory report of the last len(means) steps with these means (and stds), one seed."""
    steps = TRAJECTORY[-len(means):]
    rep = dict(meta=dict(budget=budget, dataset="digits", seeds=[0], device="cpu", torch="x", commit="abc",
                         created="now", wall_seconds=60.0, command=""), raw_pixels=dict(linear=80.0, knn=81.0),
               steps=[])
    prev = None
    for i, (s, m) in enumerate(zip(steps, means)):
        row = dict(key=s.key, label=s.label, legitimate=s.legitimate, paper=s.paper_accuracy, mean=m,
                   std=None if stds is None else stds[i], accuracies=[m], knn=m, frechet=None, train_seconds=10.0,
                   cached=True)
        if prev is not None:
            row["delta"], row["paper_delta"] = m - prev["mean"], s.paper_accuracy - prev["paper"]
            row["same_sign"] = None if row["paper_delta"] == 0 else row["delta"] * row["paper_delta"] > 0
            row["within_noise"] = None
        rep["steps"].append(row)
        prev = row
    return rep
