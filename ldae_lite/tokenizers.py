"""Tokenizers: images -> per-token latents z_0 = f(x_0) of shape (N, L, d), and back.

The paper's Stage 2 (arXiv 2401.14404, Sec. 4.2, Tab. 2) swaps the tokenizer of a latent DDM while the
sequence length stays fixed, and finds that what matters is the per-token latent dimension d, not the
tokenizer's sophistication. Objectives (Sec. 4.2; x is the image for the conv VAE, a D-dim patch else):

    conv VAE     ||x - g(f(x))||^2 + KL[f(x) || N]        (+ perceptual + adversarial: "vqgan")
    patch VAE    ||x - U^T V x||^2 + KL[V x || N]          (V, U: d x D, linear)
    patch AE     ||x - U^T V x||^2
    patch PCA    ||x - V^T V x||^2 with V V^T = I          (eigendecomposition, no gradient training)
    pixel        identity on patches (d = D)

All share one interface: ``encode(images) -> (N, L, d)``, ``decode(z) -> (N, C, H, W)``, ``fit(...)``.
Each token covers a patch_size x patch_size pixel patch (8 for 32x32 images: L = 16 tokens).
After fitting, latents are multiplied by a scalar ``latent_scale`` (1 / std of the latents, like
Stable Diffusion's 0.18215) so that noise of standard deviation sigma means the same thing for every
tokenizer; decode divides it out. Whitened PCA latents already have unit variance per coordinate.
"""

from __future__ import annotations

import copy
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .conv_vae import ConvDecoder, ConvEncoder, PatchDiscriminator, adversarial_losses
from .device import supports_bf16
from .patches import patchify, unpatchify
from .supervised import perceptual_loss

KINDS = ("vqgan", "conv_vae_adv", "conv_vae", "patch_vae", "patch_ae", "patch_pca", "pixel")


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL[N(mean, exp(logvar)) || N(0, I)], averaged over all latent elements."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()


class Tokenizer(nn.Module):
    """Base class: geometry, latent scaling, shape checks and a small self-contained training loop.

    Subclasses implement ``_encode_raw``, ``_decode_raw`` and, if trained by gradient descent,
    ``training_loss(x, step, steps, generator, cnn) -> (loss, logs)``.
    """

    kind = "base"
    default_lr = 1e-3

    def __init__(self, latent_dim: int, image_size: int = 32, channels: int = 1, patch_size: int = 8):
        super().__init__()
        for name, value in (("image_size", image_size), ("channels", channels), ("patch_size", patch_size),
                            ("latent_dim", latent_dim)):
            if int(value) < 1:
                raise ValueError(f"{name}={value} must be a positive integer")
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} is not divisible by patch_size={patch_size}; "
                             f"allowed patch sizes: {[p for p in range(1, image_size + 1) if image_size % p == 0]}")
        self.latent_dim, self.image_size, self.channels, self.patch_size = latent_dim, image_size, channels, patch_size
        self.grid = image_size // patch_size  # tokens per side
        self.num_tokens = self.grid**2  # L
        self.patch_dim = patch_size * patch_size * channels  # D
        self.config = {"latent_dim": latent_dim, "image_size": image_size, "channels": channels,
                       "patch_size": patch_size}  # constructor arguments, stored by save()
        self.register_buffer("latent_scale", torch.ones(()))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def extra_repr(self) -> str:
        return (f"kind={self.kind!r}, L={self.num_tokens}, d={self.latent_dim}, D={self.patch_dim}, "
                f"patch={self.patch_size}, image={self.channels}x{self.image_size}x{self.image_size}")

    # ---- shape checks -------------------------------------------------------------------------
    def _check_images(self, images: torch.Tensor):
        expected = (self.channels, self.image_size, self.image_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"expected images of shape (N, {', '.join(map(str, expected))}), "
                             f"got {tuple(images.shape)}")

    def _check_latents(self, z: torch.Tensor):
        if z.ndim != 3 or tuple(z.shape[1:]) != (self.num_tokens, self.latent_dim):
            raise ValueError(f"expected latents of shape (N, {self.num_tokens}, {self.latent_dim}), "
                             f"got {tuple(z.shape)}")

    # ---- the interface ------------------------------------------------------------------------
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, L, d): deterministic (a VAE returns its posterior mean), scaled."""
        self._check_images(images)
        return self._encode_raw(images) * self.latent_scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, L, d) -> (N, C, H, W); undoes the latent scale."""
        self._check_latents(z)
        return self._decode_raw(z / self.latent_scale)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """g(f(x)): what survives the tokenizer."""
        return self.decode(self.encode(images))

    def _encode_raw(self, images):
        raise NotImplementedError

    def _decode_raw(self, z):
        raise NotImplementedError

    def training_loss(self, x, step, steps, generator, cnn):
        raise NotImplementedError

    def _prepare_fit(self, cnn):
        """Validate fit arguments and return the (copied, frozen) helper network, if any."""
        return None

    # ---- training -----------------------------------------------------------------------------
    def fit(self, images: torch.Tensor, labels=None, *, steps: int = 300, batch_size: int = 128,
            lr: float | None = None, device=None, cnn=None, progress: bool = True, seed: int = 0,
            amp: bool | None = None) -> dict:
        """Train on random batches of ``images`` with AdamW, then set the latent scale.

        The whole dataset tensor is moved to ``device`` (the tokenizer stays there afterwards); batch
        indices come from a CPU generator seeded with ``seed``. ``labels`` are unused (a tokenizer is
        unsupervised; the label-trained ``cnn`` carries the supervision of the perceptual loss).
        ``amp``: bf16 autocast, on wherever the device supports it (3x faster for the
        conv VAE on a bf16 CPU). Returns training statistics.
        """
        self._check_images(images)
        device = torch.device(device) if device is not None else self.latent_scale.device
        amp = supports_bf16(device) if amp is None else amp
        cnn = self._prepare_fit(cnn)
        self.to(device).train()
        cnn = cnn.to(device) if cnn is not None else None
        x_all = images.to(device)
        gen = torch.Generator().manual_seed(seed)  # batch indices
        noise_gen = torch.Generator(device=device).manual_seed(seed)  # posterior samples
        adversarial = getattr(self, "adversarial", False)
        opt = torch.optim.AdamW(self.parameters(), lr=lr or self.default_lr, weight_decay=0.0,
                                betas=(0.5, 0.9) if adversarial else (0.9, 0.999))  # VQGAN: (0.5, 0.9)
        t0, ema, sums = time.perf_counter(), None, {}
        bar = tqdm(range(steps), desc=f"tokenizer {self.kind}", disable=not progress)
        for step in bar:
            x = x_all[torch.randint(len(x_all), (batch_size,), generator=gen).to(device)]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss, logs = self.training_loss(x, step, steps, noise_gen, cnn)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for key, value in {"loss": loss, **logs}.items():  # detached tensors: no device sync here
                sums[key] = sums.get(key, 0.0) + value.detach().float()
            if step % 10 == 9 or step == steps - 1:
                ema = loss.item() if ema is None else 0.7 * ema + 0.3 * loss.item()
                bar.set_postfix(loss=f"{ema:.4f}")
        seconds = time.perf_counter() - t0
        stats = self._finish_fit(x_all, gen)
        stats.update({"steps": steps, "seconds": seconds, "images_per_s": steps * batch_size / max(seconds, 1e-9),
                      "final_loss": ema, **{f"mean_{k}": v.item() / max(steps, 1) for k, v in sums.items()}})
        return stats

    @torch.no_grad()
    def _finish_fit(self, x_all: torch.Tensor, gen: torch.Generator, n_eval: int = 2048) -> dict:
        """Set latent_scale = 1 / std of the raw latents and measure the reconstruction MSE."""
        self.eval()
        x = x_all[torch.randperm(len(x_all), generator=gen)[:n_eval].to(x_all.device)]
        z = torch.cat([self._encode_raw(x[i:i + 512]) for i in range(0, len(x), 512)])
        self.latent_scale.fill_(1.0 / z.float().std().clamp_min(1e-8).item())
        self.fitted.fill_(True)
        return {"kind": self.kind, "recon_mse": self.reconstruction_mse(x), "latent_scale": self.latent_scale.item()}

    @torch.no_grad()
    def reconstruction_mse(self, images: torch.Tensor, batch_size: int = 512) -> float:
        """Mean squared error of reconstruct(images) per pixel (images in [-1, 1])."""
        device = self.latent_scale.device
        total = 0.0
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(device)
            total += F.mse_loss(self.reconstruct(x), x, reduction="sum").item()
        return total / images.numel()

    # ---- persistence --------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write kind, constructor arguments and state dict (fitted buffers included) atomically."""
        payload = {"kind": self.kind, "config": dict(self.config),
                   "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}}
        os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        torch.save(payload, tmp)
        os.replace(tmp, path)


def save_tokenizer(tokenizer: Tokenizer, path) -> None:
    """Function form of :meth:`Tokenizer.save`."""
    tokenizer.save(path)


def load_tokenizer(path, map_location="cpu") -> Tokenizer:
    """Rebuild a tokenizer written by :meth:`Tokenizer.save`."""
    payload = torch.load(path, map_location=map_location, weights_only=True)
    tokenizer = make_tokenizer(payload["kind"], **payload["config"])
    tokenizer.load_state_dict(payload["state_dict"])
    return tokenizer


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

    def fit(self, images, labels=None, **kwargs) -> dict:
        """Nothing to fit (the training arguments are accepted for a uniform interface)."""
        self._check_images(images)
        return {"kind": self.kind, "recon_mse": 0.0, "latent_scale": 1.0, "steps": 0, "seconds": 0.0}


def _check_patch_latent_dim(kind: str, latent_dim: int, patch_size: int, channels: int):
    D = patch_size * patch_size * channels
    if not 1 <= latent_dim <= D:
        raise ValueError(f"{kind} latent_dim={latent_dim} must lie in 1..{D}, the patch dimension "
                         f"D = patch_size**2 * channels = {patch_size}*{patch_size}*{channels}")


class PatchAE(Tokenizer):
    """Linear patch-wise autoencoder: z = V x + b (encoder V: d x D), x_hat = U^T z + c.

    Each patch is encoded independently (Tab. 2 'patch-wise AE'); loss ||x - U^T V x||^2 per element.
    The biases play the role of PCA's mean subtraction.
    """

    kind = "patch_ae"
    default_lr = 1e-2  # a linear AE is ill-conditioned; at 3e-3 it is still far from PCA after 300 steps
    variational = False

    def __init__(self, latent_dim=16, image_size=32, channels=1, patch_size=8):
        _check_patch_latent_dim(self.kind, latent_dim, patch_size, channels)
        super().__init__(latent_dim, image_size, channels, patch_size)
        out = 2 * latent_dim if self.variational else latent_dim  # a VAE also predicts log-variances
        self.encoder = nn.Linear(self.patch_dim, out)  # V
        self.decoder = nn.Linear(latent_dim, self.patch_dim)  # U^T

    def _posterior(self, images):
        h = self.encoder(patchify(images, self.patch_size))  # (N, L, d) or (N, L, 2d)
        return h.chunk(2, dim=-1) if self.variational else (h, None)

    def _encode_raw(self, images):
        return self._posterior(images)[0]  # (N, L, d): the mean for the VAE

    def _decode_raw(self, z):
        return unpatchify(self.decoder(z), self.patch_size, self.channels)

    def training_loss(self, x, step, steps, generator, cnn):
        mean, logvar = self._posterior(x)
        if not self.variational:
            return F.mse_loss(self._decode_raw(mean), x), {}
        logvar = logvar.clamp(-30.0, 20.0)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + (0.5 * logvar).exp() * eps  # reparameterisation
        rec, kl = F.mse_loss(self._decode_raw(z), x), gaussian_kl(mean.float(), logvar.float())
        return rec + self.kl_weight * kl, {"rec": rec, "kl": kl}


class PatchVAE(PatchAE):
    """Linear patch-wise VAE: posterior N(V x, diag exp(W x)), loss ||x - U^T z||^2 + kl_weight * KL.

    kl_weight (default 1e-4) weighs the KL per latent element against the MSE per pixel: a slight
    KL regularisation as in latent diffusion's KL autoencoders (which use 1e-6 on summed losses).
    """

    kind = "patch_vae"
    variational = True

    def __init__(self, latent_dim=16, image_size=32, channels=1, patch_size=8, kl_weight=1e-4):
        super().__init__(latent_dim, image_size, channels, patch_size)
        self.kl_weight = kl_weight
        self.config["kl_weight"] = kl_weight


class ConvVAE(Tokenizer):
    """Conv VAE with stride p / 2 and 2x2 grouping of latent cells into tokens: d = 4c (Tab. 2 footnote).

    Loss (Sec. 4.2): ||x - g(f(x))||^2 + kl_weight * KL per element (kl_weight default 1e-4, slight as
    in LDM), plus for the VQGAN recipe:
      perceptual  (weight ``perceptual_weight``): LPIPS-like distance in a label-trained SmallCNN
                  (passed to fit as ``cnn``; an ImageNet VGG in the original, which leaks labels);
      adversarial (hinge PatchGAN, from ``adv_start`` * steps on): weight = adv_weight * VQGAN's
                  adaptive ratio ||grad rec|| / ||grad adv|| at the decoder's last layer.
    """

    kind = "conv_vae"
    default_lr = 1e-3

    def __init__(self, latent_dim=16, image_size=32, channels=1, patch_size=8, width=32, kl_weight=1e-4,
                 perceptual=False, adversarial=False, perceptual_weight=0.1, adv_weight=0.5, adv_start=0.3):
        if latent_dim % 4:
            raise ValueError(f"conv VAE latent_dim={latent_dim} must be divisible by 4 (d = 4 x latent "
                             f"channels from 2x2 grouping); allowed e.g. 8, 16, 32, 64")
        if patch_size < 4 or patch_size & (patch_size - 1):
            raise ValueError(f"conv VAE patch_size={patch_size} must be a power of two >= 4 "
                             f"(conv stride patch_size / 2, then 2x2 grouping); allowed 4, 8, 16, 32")
        super().__init__(latent_dim, image_size, channels, patch_size)
        self.latent_channels = latent_dim // 4
        num_down = int(math.log2(patch_size // 2))
        self.encoder = ConvEncoder(channels, self.latent_channels, width, num_down)
        self.decoder = ConvDecoder(channels, self.latent_channels, width, num_down)
        self.perceptual, self.adversarial = perceptual, adversarial
        self.kl_weight, self.perceptual_weight = kl_weight, perceptual_weight
        self.adv_weight, self.adv_start = adv_weight, adv_start
        self.discriminator = PatchDiscriminator(channels, width) if adversarial else None
        self.config.update(width=width, kl_weight=kl_weight, perceptual=perceptual, adversarial=adversarial,
                           perceptual_weight=perceptual_weight, adv_weight=adv_weight, adv_start=adv_start)

    def _encode_raw(self, images):
        mean, _ = self.encoder(images)  # (N, c, h, w)
        return patchify(mean, 2)  # (N, L, 4c): 2x2 latent cells per token

    def _decode_raw(self, z):
        return self.decoder(unpatchify(z, 2, self.latent_channels, grid=(self.grid, self.grid)))

    def _prepare_fit(self, cnn):
        if not self.perceptual:
            return None
        if cnn is None:
            raise ValueError("perceptual=True needs the label-trained network: fit(..., cnn=SmallCNN) "
                             "(see ldae_lite.supervised.train_cnn); got cnn=None")
        return copy.deepcopy(cnn).eval().requires_grad_(False)  # a frozen copy; the caller's is untouched

    def training_loss(self, x, step, steps, generator, cnn):
        # 1. posterior sample by reparameterisation; KL to N(0, I)
        mean, logvar = self.encoder(x)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        x_rec = self.decoder(mean + (0.5 * logvar).exp() * eps)
        rec = F.mse_loss(x_rec.float(), x)
        kl = gaussian_kl(mean.float(), logvar.float())
        logs = {"rec": rec, "kl": kl}
        # 2. perceptual term in the label-trained network's feature space
        nll = rec
        if self.perceptual:
            p_loss = perceptual_loss(cnn, x_rec, x)
            nll = nll + self.perceptual_weight * p_loss
            logs["perceptual"] = p_loss
        loss = nll + self.kl_weight * kl
        # 3. adversarial terms after a warmup; g and d losses see only their own network (conv_vae.py)
        if self.adversarial and step >= self.adv_start * steps:
            g_loss, d_loss = adversarial_losses(self.discriminator, x, x_rec)
            last = self.decoder.net[-1].weight
            g_nll = torch.autograd.grad(nll, last, retain_graph=True)[0].norm()
            g_adv = torch.autograd.grad(g_loss, last, retain_graph=True)[0].norm()
            weight = self.adv_weight * (g_nll / (g_adv + 1e-4)).clamp(0.0, 1e4).detach()
            loss = loss + weight * g_loss + d_loss
            logs.update(g_loss=g_loss, d_loss=d_loss, adv_weight=weight)
        return loss, logs


class PatchPCA(Tokenizer):
    """Patch-wise PCA: z = V (x - mean) / sqrt(lambda), x_hat = V^T (sqrt(lambda) z) + mean (Sec. 4.2).

    fit() eigendecomposes (torch.linalg.eigh) the covariance of ``num_patches`` patches sampled at
    random from the tokenizer's own patch grid; no gradient training, ``steps`` is ignored.
    Choices the paper leaves open (PAPER.md Sec. 8.1), decided here:
      * the patch mean is subtracted (as sklearn's PCA does) and added back by decode;
      * ``whiten=True`` divides coordinate i by sqrt(lambda_i), so every latent coordinate has unit
        variance and noise sigma * eps is spread like the data's own spectrum (measured +0.5 probe points
        over the orthonormal V of the paper's equations; ``whiten=False`` keeps V orthonormal and only
        applies one global latent scale 1 / sqrt(mean lambda_1..d));
      * 100k patches by default (D <= 3072 stays well determined; all patches when fewer exist).
    Buffers: ``basis`` (D, D) rows = eigenvectors by decreasing eigenvalue (sign fixed so each row's
    largest-magnitude entry is positive), ``mean`` (D,), ``variances`` (D,) eigenvalues.
    """

    kind = "patch_pca"

    def __init__(self, latent_dim=16, image_size=32, channels=1, patch_size=8, whiten=True,
                 num_patches=100_000):
        _check_patch_latent_dim(self.kind, latent_dim, patch_size, channels)
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
    def fit(self, images, labels=None, *, steps=None, batch_size=None, lr=None, device=None, cnn=None,
            progress=True, seed=0, amp=None) -> dict:
        """Eigendecomposition of the patch covariance; steps, batch_size, lr, cnn, amp are ignored."""
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


_CLASSES = {"vqgan": (ConvVAE, {"perceptual": True, "adversarial": True}),
            "conv_vae_adv": (ConvVAE, {"adversarial": True}),
            "conv_vae": (ConvVAE, {}),
            "patch_vae": (PatchVAE, {}),
            "patch_ae": (PatchAE, {}),
            "patch_pca": (PatchPCA, {}),
            "pixel": (PixelTokenizer, {})}


def make_tokenizer(kind: str, latent_dim: int | None = None, image_size: int = 32, channels: int = 1,
                   patch_size: int = 8, **opts) -> Tokenizer:
    """Build an (unfitted) tokenizer by kind; latent_dim None means 16 (pixel: D = p * p * C).

    opts go to the class: e.g. whiten/num_patches (PCA), kl_weight, width, perceptual_weight (conv VAE).
    """
    if kind not in _CLASSES:
        raise ValueError(f"unknown tokenizer kind {kind!r}; allowed: {', '.join(KINDS)}")
    cls, preset = _CLASSES[kind]
    if latent_dim is None and cls is not PixelTokenizer:
        latent_dim = 16
    tokenizer = cls(latent_dim, image_size, channels, patch_size, **{**preset, **opts})
    tokenizer.kind = kind  # "vqgan" and "conv_vae_adv" are ConvVAE presets
    return tokenizer
