"""The budget search's scoring (ldae_lite/search.py): what counts as a change the student can see."""

import pytest

from ldae_lite import search


def fake(changes, accuracies=(60.0, 61.0, 62.0), raw=50.0, wall=600.0, trained=39, train_seconds=30.0):
    """A 3-seed report whose steps have the given (same_sign, within_noise) changes; the last step is l-DAE."""
    steps = [{"key": f"s{i}", "same_sign": sign, "within_noise": within, "accuracies": list(accuracies),
              "train_seconds": train_seconds} for i, (sign, within) in enumerate(changes)]
    steps.append({"key": "predict_image", "same_sign": None, "within_noise": None, "accuracies": list(accuracies),
                  "train_seconds": train_seconds})
    return {"meta": {"seeds": [0, 1, 2], "wall_seconds": wall, "runs_trained": trained, "commit": "abc", "workers": 2},
            "raw_pixels": {"linear": raw}, "steps": steps}


def test_only_changes_with_the_papers_sign_and_beyond_noise_count():
    rep = fake([(True, False), (True, True), (False, False), (None, False), (True, None)])
    assert search.signed_beyond_noise(rep) == ["s0"]


def test_beyond_uses_the_reports_noise_bar():
    far = search.beyond([50.0, 50.0, 50.0], [60.0, 61.0, 62.0])
    assert far["delta"] == pytest.approx(11.0) and far["noise"] == pytest.approx(2 * (1 / 3) ** 0.5)
    assert far["beyond"] is True
    assert search.beyond([60.0, 62.0, 64.0], [61.0, 62.0, 63.0])["beyond"] is False
    assert search.beyond([60.0], [61.0])["beyond"] is None  # one seed: no bar


def test_a_candidate_row_and_the_cost_it_is_ranked_by():
    row = search.candidate_row("c", fake([(True, False)] * 3, trained=3), [55.0, 56.0, 57.0], "r.json")
    assert row["signed_beyond_noise"] == 3 and row["seeds"] == 3 and row["cached_runs"] == 12 - 3
    assert row["ldae_minus_pixel_dae"]["beyond"] is True and row["ldae_minus_raw"]["delta"] == pytest.approx(11.0)
    assert row["train_minutes_per_seed"] == pytest.approx(4 * 30.0 / 60 / 3)
    assert row["minutes_per_seed"] == pytest.approx(600 / 60 / 3)
    empty = search.candidate_row("not yet", None, None)
    assert empty["signed_beyond_noise"] is None and empty["seeds"] is None


def test_the_table_names_the_cheapest_candidate_that_reaches_the_target():
    cheap = search.candidate_row("cheap", fake([(True, True)] * 11, train_seconds=10.0), [])
    good = search.candidate_row("good", fake([(True, False)] * 7 + [(False, False)] * 4, train_seconds=20.0), [])
    costly = search.candidate_row("costly", fake([(True, False)] * 9 + [(True, True)] * 2, train_seconds=90.0), [])
    text = search.to_markdown([cheap, good, costly], "digits")
    assert "Cheapest candidate with at least 7 of 11 signed changes beyond noise: **good**" in text
    assert "not measured" in text and "| **0** |" in text
    assert "good: 7 of 11 at 3.3 wall minutes a seed from an empty cache, within the 30-minute goal." in text
    slow = search.candidate_row("slow", fake([(True, False)] * 6, wall=3 * 35.5 * 60), [])
    assert "slow: 6 of 11 at 35.5 wall minutes a seed from an empty cache, 5.5 over the 30-minute goal." in \
        search.to_markdown([slow], "digits")
    short = search.to_markdown([cheap, search.candidate_row("five", fake([(True, False)] * 5), [])], "digits")
    assert "\nNo candidate reaches 7 of 11; the best, **five**, has 5, 2 short.\n" in short
    cached = search.to_markdown([search.candidate_row("c", fake([], trained=3), [])], "digits")
    assert "≥ 66.7 (2 workers, 0 runs cached)" not in cached and "(2 workers)" in cached


def test_the_shipped_table_or_how_to_make_it(tmp_path):
    assert "make search" in search.shipped_markdown(tmp_path / "none.md")
    shipped = search.shipped_markdown()
    assert "paper's sign, beyond noise (of 11)" in shipped and "300 steps of 256" in shipped
