"""stats: mean and spread over seeds, the noise bar, a change over seeds in words, rank correlation."""

import pytest

from ldae_lite import stats


def test_mean_std():
    assert stats.mean_std([1.0, None, 3.0]) == (2.0, pytest.approx(2 ** 0.5))
    assert stats.mean_std([5.0]) == (5.0, None) and stats.mean_std([None]) == (None, None)


def test_within_noise_is_two_standard_errors_of_the_difference_of_means():
    # seeds' std 0.3 and 0.4 over 3 seeds each: SE of the difference sqrt((0.09 + 0.16) / 3) = 0.289
    assert stats.noise_bar(0.3, 0.4, 3) == pytest.approx(2 * (0.25 / 3) ** 0.5)
    assert stats.noise_bar(None, 0.4, 3) is None  # one seed: no spread to compare against


def test_change_summary():
    assert stats.change_summary([65.0, 66.0, 65.5], [64.0, 64.5, 64.0]) == (
        "-1.33 ± 0.29 (3 seeds: 65.50 ± 0.50 -> 64.17 ± 0.29); beyond noise (two standard errors: 0.67)")
    assert stats.change_summary([60.0], [59.2]) == "-0.80 (one seed: 60.00 -> 59.20)"


def test_rank_correlation():
    assert stats.rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert stats.rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert stats.rank_correlation([1, 2], [1, 2]) is None
    assert stats.rank_correlation([1, 1, 1], [1, 2, 3]) is None
    with pytest.raises(ValueError, match="different lengths 2 and 3"):
        stats.rank_correlation([1, 2], [1, 2, 3])
