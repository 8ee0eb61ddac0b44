"""Checks for the exercises of notebooks 05 (patch PCA by eigendecomposition, Sec. 4.2) and 06 (latent
noise through the inverse PCA, Sec. 4.3 and Fig. 7).

Same conventions as :mod:`ldae_lite.exercises.schedule`: one printed line (``correct``, ``not solved
yet`` or ``not quite: <what is wrong>``), a true Verdict only when right, never raises.
"""

from __future__ import annotations

import torch

from ..patches import patchify, unpatchify
from ..tokenizers import PatchPCA
from ._check import Verdict
from .schedule import _as_tensor, _call, _close, _report


def _synthetic_patches(n: int = 4000, p: int = 3, seed: int = 0) -> torch.Tensor:
    """(n, p * p) patches with a clear spectrum (stds 1.5^-i, well separated) and a non-zero mean patch."""
    gen = torch.Generator().manual_seed(seed)
    D = p * p
    q, _ = torch.linalg.qr(torch.randn(D, D, generator=gen, dtype=torch.float64))
    stds = 1.5 ** -torch.arange(D, dtype=torch.float64)
    coords = torch.randn(n, D, generator=gen, dtype=torch.float64) * stds
    mean = 0.8 * torch.randn(D, generator=gen, dtype=torch.float64)
    return (coords @ q.T + mean).float()


def _package_pca(patches: torch.Tensor, p: int, d: int | None = None, whiten: bool = True) -> PatchPCA:
    images = unpatchify(patches[:, None, :], p, 1)  # (n, 1, p, p): one patch per image
    pca = PatchPCA(d or patches.shape[1], p, 1, p, whiten=whiten)
    pca.fit(images, progress=False)
    return pca


def _same_up_to_sign(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-3) -> bool:
    """Rows of a and b equal up to one sign per row (eigenvectors have no preferred sign)."""
    return a.shape == b.shape and bool(((a * b).sum(1).abs() - 1).abs().max() < tol)


# --------------------------------------------------------------------------------------------------
# notebook 05: PCA basis by eigendecomposition of the patch covariance
# --------------------------------------------------------------------------------------------------
def check_pca_basis(fn, patches: torch.Tensor | None = None, patch_size: int = 3) -> Verdict:
    """fn(patches (N, D)) -> V (D, D): rows are the principal components, by decreasing variance.

    Checked on synthetic patches with a known, well-separated spectrum (or on ``patches`` of
    ``patch_size`` x ``patch_size`` pixels): V V^T = I, and each row equals PatchPCA's up to sign.
    """
    x = _synthetic_patches(p=patch_size) if patches is None else patches.float()
    D = x.shape[1]

    def body():
        out, err = _call(fn, x.clone())
        if err:
            return err
        V, err = _as_tensor(out, (D, D), "V")
        if err:
            return err
        ref = _package_pca(x, patch_size).basis.double()
        if _same_up_to_sign(V, ref):
            return None
        if _same_up_to_sign(V.T, ref):
            return "your components are the columns of V: torch.linalg.eigh returns eigenvectors as columns; transpose"
        if _same_up_to_sign(V.flip(0), ref) or _same_up_to_sign(V.T.flip(0), ref):
            return ("your components are in increasing order of variance: torch.linalg.eigh sorts eigenvalues "
                    "ascending; flip so that row 0 is the direction of largest variance")
        if not _close(V @ V.T, torch.eye(D, dtype=torch.float64), 1e-4):
            return "V V^T is not the identity: the rows must be orthonormal eigenvectors of the covariance"
        raw = torch.linalg.eigh((x.double().T @ x.double()) / len(x))[1].flip(1).T
        if _same_up_to_sign(V, raw, 1e-2):
            return ("you eigendecomposed x^T x without subtracting the mean patch: the first component then "
                    "points at the mean; centre the patches first (PatchPCA does)")
        match = (V * ref).sum(1).abs()
        first = int((match < 0.999).nonzero()[0])
        return (f"row {first} of V is not the component of rank {first} (|cos| = {match[first]:.3f} with the "
                "package's); sort by decreasing eigenvalue and use the covariance of the centred patches")

    return _report(fn, body, "orthonormal rows, by decreasing variance, equal to PatchPCA's basis up to sign")


# --------------------------------------------------------------------------------------------------
# notebook 06: noise added in the PCA latent and mapped back through the inverse PCA
# --------------------------------------------------------------------------------------------------
def check_latent_noise(fn) -> Verdict:
    """fn(x (L, D), V (d, D), mean (D,), sigma, eps (L, d)) -> x_t (L, D) = V^T (V (x - mean) + sigma eps) + mean.

    The paper's Sec. 4.3 input x_t = V^T (V x_0 + sigma eps) with an orthonormal V (no whitening, no latent
    scale), the mean patch subtracted and added back. Compared with PatchPCA decode(encode(x) + sigma eps).
    """
    p, d, sigma = 3, 4, 0.7
    patches = _synthetic_patches(p=p)
    pca = _package_pca(patches, p, d, whiten=False)
    pca.latent_scale.fill_(1.0)  # the paper's plain orthonormal V
    x = patches[:50]
    eps = torch.randn(50, d, generator=torch.Generator().manual_seed(1))
    images = unpatchify(x[:, None, :], p, 1)  # (L, 1, p, p)
    expected = patchify(pca.decode(pca.encode(images) + sigma * eps[:, None, :]), p)[:, 0]  # (L, D)
    V, mean = pca.components.clone(), pca.mean.clone()

    def body():
        out, err = _call(fn, x.clone(), V.clone(), mean.clone(), sigma, eps.clone())
        if err:
            return err + " (hint: V is (d, D); the latent is (x - mean) @ V.T, and z @ V maps it back)"
        xt, err = _as_tensor(out, x.shape, "x_t")
        if err:
            return err
        if _close(xt, expected, 1e-4):
            return None
        projection = (x - mean) @ V.T @ V + mean
        if _close(xt, projection, 1e-4):
            return "your output is the projection V^T V x: add sigma * eps to the latent before mapping back"
        if _close(xt, (x @ V.T + sigma * eps) @ V, 1e-4):
            return "subtract the mean patch before projecting and add it back afterwards"
        if _close(xt, expected - mean, 1e-4):
            return "add the mean patch back at the end: x_t = V^T (V (x - mean) + sigma eps) + mean"
        return (f"x_t differs from V^T (V (x - mean) + sigma eps) + mean by up to {(xt - expected).abs().max():.4f}; "
                "the noise term is sigma * eps @ V, of shape (L, D)")

    return _report(fn, body, "x_t = V^T (V (x - mean) + sigma eps) + mean, as PatchPCA's decode(encode(x) + sigma eps)")
