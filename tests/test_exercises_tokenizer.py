"""The exercise checks of notebooks 05 and 06 accept the right answer and name what is wrong in a typical slip."""

import pytest
import torch
from _exercises import accepts, rejects, run, waits_for_an_answer

from ldae_lite.exercises import tokenizer


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
    accepts(tokenizer.check_pca_basis, pca_basis, capsys)
    ok, out = run(tokenizer.check_pca_basis, lambda x: -pca_basis(x), capsys)
    assert ok  # signs are free
    rejects(tokenizer.check_pca_basis, fn, message, capsys)


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
    accepts(tokenizer.check_latent_noise, latent_noise, capsys)
    rejects(tokenizer.check_latent_noise, fn, message, capsys)


@pytest.mark.parametrize("check", [tokenizer.check_pca_basis, tokenizer.check_latent_noise])
def test_unsolved_does_not_raise(check, capsys):
    waits_for_an_answer(check, capsys)
