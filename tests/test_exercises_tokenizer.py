"""The exercise checks of notebooks 05 and 06 accept the right answer and name what is wrong in a typical slip."""

import pytest
import torch

from ldae_lite.exercises import tokenizer


def run(check, fn, capsys):
    ok = check(fn)
    return ok, capsys.readouterr().out


def unsolved(*args):
    raise NotImplementedError


def pca_basis(patches):
    x = patches.double() - patches.double().mean(0)
    evals, evecs = torch.linalg.eigh(x.T @ x / len(x))
    return evecs.flip(1).T


@pytest.mark.parametrize("fn, message", [
    (lambda x: pca_basis(x).T, "columns"),
    (lambda x: pca_basis(x).flip(0), "increasing order"),
    (lambda x: pca_basis(x) * 2, "not the identity"),
    (lambda x: torch.linalg.eigh(x.double().T @ x.double())[1].flip(1).T, "mean"),
    (lambda x: pca_basis(x)[:3], "shape"),
    (lambda x: pca_basis(x)[torch.tensor([1, 0, 2, 3, 4, 5, 6, 7, 8])], "row 0"),
])
def test_pca_basis(fn, message, capsys):
    ok, out = run(tokenizer.check_pca_basis, pca_basis, capsys)
    assert ok and out.startswith("correct")
    ok, out = run(tokenizer.check_pca_basis, lambda x: -pca_basis(x), capsys)
    assert ok  # signs are free
    ok, out = run(tokenizer.check_pca_basis, fn, capsys)
    assert not ok and out.startswith("not quite") and message in out


def latent_noise(x, V, mean, sigma, eps):
    return ((x - mean) @ V.T + sigma * eps) @ V + mean


@pytest.mark.parametrize("fn, message", [
    (lambda x, V, m, s, e: latent_noise(x, V, m, 0.0, e), "projection"),
    (lambda x, V, m, s, e: (x @ V.T + s * e) @ V, "subtract the mean"),
    (lambda x, V, m, s, e: latent_noise(x, V, m, s, e) - m, "add the mean patch back"),
    (lambda x, V, m, s, e: ((x - m) @ V + s * e) @ V.T + m, "hint: V is (d, D)"),
    (lambda x, V, m, s, e: latent_noise(x, V, m, 2 * s, e), "differs"),
])
def test_latent_noise(fn, message, capsys):
    ok, out = run(tokenizer.check_latent_noise, latent_noise, capsys)
    assert ok and out.startswith("correct")
    ok, out = run(tokenizer.check_latent_noise, fn, capsys)
    assert not ok and out.startswith("not quite") and message in out


@pytest.mark.parametrize("check", [tokenizer.check_pca_basis, tokenizer.check_latent_noise])
def test_unsolved_does_not_raise(check, capsys):
    ok, out = run(check, unsolved, capsys)
    assert not ok and out.startswith("not solved yet")
