"""Tokenizers without gradient training: patch-wise PCA and the identity on patches ("pixel").

The paper's Stage 2 (arXiv 2401.14404, Sec. 4.2, Tab. 2) ends at a patch-wise PCA: z = V x, x_hat = V^T z
with V V^T = I (d x D), an eigendecomposition instead of a trained autoencoder, and finds that a PCA
tokenizer works as well as the convolutional VAE. Fig. 5's 'pixel' tokenizer is no tokenizer at all:
the patches themselves, d = D.
"""

from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm

from ..patches import patchify, unpatchify
from .base import Tokenizer, check_patch_latent_dim


class PixelTokenizer(Tokenizer):
    """Identity on patches: z = patchify(x), d = D = p * p * C (the paper's Fig. 5 'pixel' tokenizer).

    Images are already in [-1, 1], so the latent scale stays 1 and fit() does nothing.
    """

    kind = "pixel"

    def __init__(self, latent_dim=None, image_size=32, channels=1, patch_size=8):
        D = patch_size * patch_size * channels
        if latent_dim is not None and latent_dim != D:
            raise ValueError(f"pixel tokenizer latent_dim={latent_dim} must equal the patch dimension "
                             f"D = patch_size**2 * channels = {D} (allowed: {D} or None)")
        super().__init__(D, image_size, channels, patch_size)
        self.fitted.fill_(True)

    def _encode_raw(self, images):
        return patchify(images, self.patch_size)  # (N, L, D)

    def _decode_raw(self, z):
        return unpatchify(z, self.patch_size, self.channels)  # (N, C, H, W)

    def fit(self, images, labels=None, **training) -> dict:
        """Nothing to fit (the training arguments of the other tokenizers are accepted and ignored)."""
        self._check_images(images)
        return {"kind": self.kind, "recon_mse": 0.0, "latent_scale": 1.0, "steps": 0, "seconds": 0.0}


class PatchPCA(Tokenizer):
    """Patch-wise PCA: z = V (x - mean) / sqrt(lambda), x_hat = V^T (sqrt(lambda) z) + mean (Sec. 4.2).

    fit() eigendecomposes (torch.linalg.eigh) the covariance of ``num_patches`` patches sampled at
    random from the tokenizer's own patch grid; no gradient training, ``steps`` is ignored.
    Choices the paper leaves open (docs/paper.md §8.1), decided here:
      * the patch mean is subtracted (as sklearn's PCA does) and added back by decode;
      * ``whiten=True`` divides coordinate i by sqrt(lambda_i), so every latent coordinate has unit
        variance and noise sigma * eps is spread like the data's own spectrum (against the orthonormal V
        of the paper's equations: results/lecture/levers.md, group 'whitening'); ``whiten=False`` keeps V
        orthonormal and only applies one global latent scale 1 / sqrt(mean lambda_1..d);
      * 100k patches by default (D <= 3072 stays well determined; all patches when fewer exist).
    Buffers: ``basis`` (D, D) rows = eigenvectors by decreasing eigenvalue (sign fixed so each row's
    largest-magnitude entry is positive), ``mean`` (D,), ``variances`` (D,) eigenvalues.
    """

    kind = "patch_pca"

    def __init__(self, latent_dim=16, image_size=32, channels=1, patch_size=8, whiten=True,
                 num_patches=100_000):
        check_patch_latent_dim(self.kind, latent_dim, patch_size, channels)
        super().__init__(latent_dim, image_size, channels, patch_size)
        self.whiten, self.num_patches = whiten, num_patches
        self.config.update(whiten=whiten, num_patches=num_patches)
        D = self.patch_dim
        self.register_buffer("basis", torch.eye(D))
        self.register_buffer("mean", torch.zeros(D))
        self.register_buffer("variances", torch.ones(D))

    @property
    def components(self) -> torch.Tensor:
        """V: the top-d rows of the basis, (d, D)."""
        return self.basis[: self.latent_dim]

    def _latent_std(self) -> torch.Tensor:
        """Per-coordinate divisor: sqrt(lambda_i) when whitening (floored for flat directions), else 1."""
        if not self.whiten:
            return torch.ones_like(self.variances[: self.latent_dim])
        floor = 1e-6 * self.variances[0].clamp_min(1e-12)
        return self.variances[: self.latent_dim].clamp_min(floor).sqrt()

    def coordinate_scales(self) -> torch.Tensor:
        """(D,) s_i that put the full basis's coordinates in the latent's units: the first d as encode
        divides them (sqrt(lambda_i) when whitening, else 1), the residual D - d in units of the last
        kept one, s_d (its own lambda_i can be ~0). Used by the image-space loss (objectives.py)."""
        s = self._latent_std()
        return torch.cat([s, s[-1:].expand(self.patch_dim - self.latent_dim)])

    def _check_fitted(self):
        if not bool(self.fitted):
            raise RuntimeError("PatchPCA is not fitted: call fit(images) or load a saved tokenizer first")

    def _encode_raw(self, images):
        self._check_fitted()
        coords = (patchify(images, self.patch_size) - self.mean) @ self.components.T  # (N, L, d)
        return coords / self._latent_std()

    def _latent_to_patches(self, z):
        """The linear part of decode (no mean): (N, L, d) unscaled latents -> (N, L, D) patches."""
        return (z * self._latent_std()) @ self.components

    def _decode_raw(self, z):
        self._check_fitted()
        return unpatchify(self._latent_to_patches(z) + self.mean, self.patch_size, self.channels)

    def project(self, images: torch.Tensor) -> torch.Tensor:
        """Inverse PCA of the d-dim latent, V^T V (x - mean) + mean: what the network sees at sigma = 0."""
        return self.reconstruct(images)

    def full_coords(self, images: torch.Tensor, center: bool = True) -> torch.Tensor:
        """Coordinates in the full orthonormal basis (unwhitened): (N, L, D), r = V_full (x - mean).

        Sec. 4.3 / Eq. 4 weighs the residual of the first d coordinates by 1 and the other D - d by 0.1.
        Differences of full_coords are mean-free; pass center=False to rotate an image difference.
        """
        self._check_images(images)
        self._check_fitted()
        patches = patchify(images, self.patch_size)  # (N, L, D)
        return (patches - self.mean if center else patches) @ self.basis.T

    def to_image_space_noise(self, eps_latent: torch.Tensor) -> torch.Tensor:
        """Map latent noise (N, L, d) to image space, V^T (sqrt(lambda) eps / scale): decode without the mean."""
        self._check_latents(eps_latent)
        patches = self._latent_to_patches(eps_latent / self.latent_scale)  # (N, L, D)
        return unpatchify(patches, self.patch_size, self.channels)

    @torch.no_grad()
    def fit(self, images, labels=None, *, device=None, progress=True, seed=0, **training) -> dict:
        """Eigendecomposition of the patch covariance. The gradient-training arguments of the learned
        tokenizers (steps, batch_size, lr, perceptual, amp, ckpt_path, ...) are accepted and ignored."""
        self._check_images(images)
        device = torch.device(device) if device is not None else self.basis.device
        self.to(device)
        t0, n, L, D = time.perf_counter(), len(images), self.num_tokens, self.patch_dim
        # 1. choose which (image, grid position) patches to use
        keep = torch.zeros(n * L, dtype=torch.bool)
        if n * L <= self.num_patches:
            keep[:] = True
        else:
            keep[torch.randperm(n * L, generator=torch.Generator().manual_seed(seed))[: self.num_patches]] = True
        # 2. stream the chosen patches: shifted sums in float64 (shift = first chunk's mean, for precision)
        shift, total, s1, s2 = None, 0, torch.zeros(D, dtype=torch.float64, device=device), None
        chunk = max(1, 65536 // L)
        for i in tqdm(range(0, n, chunk), desc="patch PCA", disable=not progress):
            patches = patchify(images[i:i + chunk].to(device).float(), self.patch_size).reshape(-1, D)
            patches = patches[keep[i * L:(i + chunk) * L].to(device)]  # (n_chunk, D)
            if len(patches) == 0:
                continue
            if shift is None:
                shift = patches.mean(dim=0)
                s2 = torch.zeros(D, D, dtype=torch.float64, device=device)
            centred = patches - shift
            s1 += centred.sum(dim=0).double()
            s2 += (centred.T @ centred).double()
            total += len(patches)
        # 3. covariance and its eigendecomposition (float64 up to D = 1024; float32 above, for speed)
        m1 = s1 / total
        cov = s2 / total - torch.outer(m1, m1)  # (D, D)
        evals, evecs = torch.linalg.eigh(cov if D <= 1024 else cov.float())
        evals, evecs = evals.flip(0).clamp_min(0.0), evecs.flip(1).T  # rows = components, descending
        rows = torch.arange(D, device=device)
        evecs = evecs * evecs[rows, evecs.abs().argmax(dim=1)].sign()[:, None]  # deterministic signs
        self.basis.copy_(evecs.float())
        self.variances.copy_(evals.float())
        self.mean.copy_((shift.double() + m1).float())
        # 4. latent scale: whitened coordinates already have unit variance; else 1 / pooled std
        scale = 1.0 if self.whiten else 1.0 / self.variances[: self.latent_dim].mean().clamp_min(1e-12).sqrt()
        self.latent_scale.fill_(float(scale))
        self.fitted.fill_(True)
        seconds = time.perf_counter() - t0
        sample = images[torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:2048]].to(device)
        explained = (self.variances[: self.latent_dim].sum() / self.variances.sum().clamp_min(1e-12)).item()
        return {"kind": self.kind, "recon_mse": self.reconstruction_mse(sample), "latent_scale": float(scale),
                "num_patches": total, "explained_variance": explained, "steps": 0, "seconds": seconds}


