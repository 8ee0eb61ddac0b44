"""The exercise checks of notebooks 07-09 accept the right answer and name what is wrong in a typical slip."""

import math

import pytest
import torch
from _exercises import accepts, rejects, run, waits_for_an_answer

from ldae_lite.exercises import dae
from ldae_lite.objectives import residual_weighted_error


# -- residual weights -------------------------------------------------------------------------------
def weights(D, d, w):
    out = torch.full((D,), float(w))
    out[:d] = 1.0
    return out


@pytest.mark.parametrize("fn, message", [
    (lambda D, d, w: 1 - weights(D, d, w) + w, "other way round"),
    (lambda D, d, w: weights(D, d + 1, w), "off by one"),
    (lambda D, d, w: weights(D, d, w)[:d], "shape"),
    (lambda D, d, w: [1.0] * D, "torch tensor"),
])
def test_residual_weights(fn, message, capsys):
    assert run(dae.check_residual_weights, weights, capsys)[0]
    rejects(dae.check_residual_weights, fn, message, capsys)


# -- residual-weighted error ----------------------------------------------------------------------------
def right(residual, basis, d, w):
    r = residual @ basis.T  # coordinates in the full PCA basis
    return (weights(basis.shape[0], d, w) * r**2).mean(dim=(1, 2))


@pytest.mark.parametrize("fn, message", [
    (lambda res, V, d, w: (weights(V.shape[0], d, w) * res**2).mean(dim=(1, 2)), "pixel space, not in the PCA basis"),
    (lambda res, V, d, w: (weights(V.shape[0], d, w) * (res @ V) ** 2).mean(dim=(1, 2)), "wrong way"),
    (lambda res, V, d, w: (res**2).mean(dim=(1, 2)), "plain mean squared error"),
    (lambda res, V, d, w: ((1 - weights(V.shape[0], d, w) + w) * (res @ V.T) ** 2).mean(dim=(1, 2)), "swapped"),
    (lambda res, V, d, w: (weights(V.shape[0], d, w) * (res @ V.T) ** 2).sum(dim=(1, 2)), "average instead"),
    (lambda res, V, d, w: (weights(V.shape[0], d, w) * (res @ V.T) ** 2).mean(), "one number for the whole batch"),
    (lambda res, V, d, w: ((res @ V.T)[..., :d] ** 2).mean(dim=(1, 2)), "only the first d"),
    (lambda res, V, d, w: 1 / 0, "ZeroDivisionError"),
])
def test_residual_weighted_error(fn, message, capsys):
    accepts(dae.check_residual_weighted_error, right, capsys)
    rejects(dae.check_residual_weighted_error, fn, message, capsys)


def test_residual_weighted_error_package_version_passes(capsys):
    assert run(dae.check_residual_weighted_error, residual_weighted_error, capsys)[0]


def test_unsolved_says_so_and_does_not_raise(capsys):
    for check in (dae.check_residual_weights, dae.check_residual_weighted_error, dae.check_loss_weight,
                  dae.check_noisy_input, dae.check_within_noise):
        waits_for_an_answer(check, capsys)


# -- loss weight --------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn, message", [
    (lambda s: 1 / (1 + s), "not squared"),
    (lambda s: 1 - s**2, "gamma^2"),
    (lambda s: 1 + s**2, "inverse"),
    (lambda s: 1 / (1 + s**2)[:3], "shape"),
])
def test_loss_weight(fn, message, capsys):
    assert run(dae.check_loss_weight, lambda s: 1 / (1 + s**2), capsys)[0]
    ok, out = run(dae.check_loss_weight, fn, capsys)
    assert not ok and message in out, out


# -- noisy probe input ----------------------------------------------------------------------------------
def noisy_right(obj, z0, t, eps):
    return obj.net_input(obj.schedule.gamma(t).view(-1, 1, 1) * z0 + obj.schedule.sigma(t).view(-1, 1, 1) * eps)


@pytest.mark.parametrize("fn, message", [
    (lambda obj, z0, t, eps: obj.schedule.add_noise(z0, t, eps), "noisy latent z_t"),
    (lambda obj, z0, t, eps: obj.net_input(z0 + obj.schedule.sigma(t).view(-1, 1, 1) * eps), "input scaling"),
    (lambda obj, z0, t, eps: obj.net_input(z0), "no noise"),
])
def test_noisy_input(fn, message, capsys):
    accepts(dae.check_noisy_input, noisy_right, capsys)
    ok, out = run(dae.check_noisy_input, fn, capsys)
    assert not ok and message in out, out


# -- within noise ---------------------------------------------------------------------------------------
def within_right(delta, a, b, n):
    if a is None or b is None:
        return None
    return abs(delta) <= 2 * math.sqrt((a**2 + b**2) / n)


@pytest.mark.parametrize("fn, message", [
    (lambda d, a, b, n: None if a is None or b is None else abs(d) <= 2 * (a + b) / math.sqrt(n),
     "sum of the variances"),
    (lambda d, a, b, n: None if a is None or b is None else abs(d) <= math.sqrt((a**2 + b**2) / n),
     "two standard errors"),
    (lambda d, a, b, n: None if a is None or b is None else d <= 2 * math.sqrt((a**2 + b**2) / n), "|delta|"),
    (lambda d, a, b, n: None if a is None or b is None else abs(d) <= 2 * math.sqrt(a**2 + b**2), "sqrt(n)"),
    (lambda d, a, b, n: not within_right(d, a, b, n) if a and b else None, "expected"),
    (lambda d, a, b, n: abs(d) <= 2 * math.sqrt(((a or 0) ** 2 + (b or 0) ** 2) / n), "None"),
])
def test_within_noise(fn, message, capsys):
    accepts(dae.check_within_noise, within_right, capsys)
    ok, out = run(dae.check_within_noise, fn, capsys)
    assert not ok and message in out, out
