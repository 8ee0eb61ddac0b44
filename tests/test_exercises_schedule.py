"""The exercise checks of notebook 04 accept the right answer and name what is wrong in a typical slip."""

import math

import pytest
import torch
from _exercises import accepts, rejects, run, waits_for_an_answer

from ldae_lite.exercises import schedule


def linear_gamma2(T):
    return 1.0 - (torch.arange(T, dtype=torch.float64) + 1) / T


@pytest.mark.parametrize("fn, message", [
    (lambda T: 1.0 - torch.arange(T) / T, "off by one"),
    (lambda T: (torch.arange(T) + 1.0) / T, "grows with t"),
    (lambda T: linear_gamma2(T).sqrt(), "square root"),
    (lambda T: linear_gamma2(T)[:-1], "shape"),
    (lambda T: linear_gamma2(T) * 0.9, "expected"),
    (lambda T: "gamma", "tensor"),
])
def test_linear_gamma2(fn, message, capsys):
    accepts(schedule.check_linear_gamma2, linear_gamma2, capsys)
    ok, out = run(schedule.check_linear_gamma2, lambda T: [1 - (t + 1) / T for t in range(T)], capsys)
    assert ok  # a plain list is fine too
    rejects(schedule.check_linear_gamma2, fn, message, capsys)


def add_noise(z0, t, eps, gamma2):
    g2 = gamma2[t].view(-1, 1, 1)
    return g2.sqrt() * z0 + (1 - g2).sqrt() * eps


@pytest.mark.parametrize("fn, message", [
    (lambda z0, t, eps, g2: g2[t].view(-1, 1, 1) * z0 + (1 - g2[t].view(-1, 1, 1)) * eps, "square roots"),
    (lambda z0, t, eps, g2: g2[t].view(-1, 1, 1).sqrt() * z0 + (1 - g2[t].view(-1, 1, 1).sqrt()) * eps,
     "not 1 - gamma_t"),
    (lambda z0, t, eps, g2: add_noise(eps, t, z0, g2), "other way round"),
    (lambda z0, t, eps, g2: g2[t].sqrt() * z0, "hint: gamma2[t] has shape (N,)"),
    (lambda z0, t, eps, g2: add_noise(z0, t, eps, g2)[:, 0], "shape"),
    (lambda z0, t, eps, g2: add_noise(z0, torch.zeros_like(t), eps, g2), "t = "),
])
def test_add_noise(fn, message, capsys):
    accepts(schedule.check_add_noise, add_noise, capsys)
    rejects(schedule.check_add_noise, fn, message, capsys)


@pytest.mark.parametrize("check", [schedule.check_linear_gamma2, schedule.check_add_noise])
def test_unsolved_does_not_raise(check, capsys):
    assert "unsolved" in waits_for_an_answer(check, capsys)


def test_share_below_half():
    assert math.isclose(float((linear_gamma2(1000) < 0.5).double().mean()), 0.5, abs_tol=1e-3)
