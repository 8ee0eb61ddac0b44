"""Tokenizers trained by gradient descent: the conv VAE (VQGAN-style), the patch VAE and the patch AE.

Objectives (arXiv 2401.14404, Sec. 4.2, Tab. 2; x is the image for the conv VAE, a D-dim patch else):

    conv VAE     ||x - g(f(x))||^2 + KL[f(x) || N]        (+ perceptual + adversarial: "vqgan")
    patch VAE    ||x - U^T V x||^2 + KL[V x || N]          (V, U: d x D, linear)
    patch AE     ||x - U^T V x||^2

:class:`LearnedTokenizer` holds their training loop, built from the same parts as the denoiser's
(:mod:`ldae_lite.train`): AdamW, the progress bar, crash-safe checkpoints. The perceptual loss of the
VQGAN recipe needs a label-trained network; it is passed in as a function (see
:func:`ldae_lite.supervised.frozen_perceptual_loss`), so that this module knows nothing about labels.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..batching import batched
from ..checkpoint import Checkpointer, resume, rng_state
from ..conv_vae import ConvDecoder, ConvEncoder, PatchDiscriminator, adversarial_losses
from ..device import supports_bf16
from ..patches import patchify, unpatchify
from ..progress import Progress
from ..train import TrainConfig, build_optimizer, check_loss, update
from .base import Tokenizer, check_patch_latent_dim

Perceptual = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_rec, x) -> scalar distance


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL[N(mean, exp(logvar)) || N(0, I)], averaged over all latent elements."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()


class LearnedTokenizer(Tokenizer):
    """A tokenizer trained by gradient descent: subclasses implement
    ``training_loss(x, step, steps, generator, perceptual) -> (loss, logs)``."""

    default_lr = 1e-3
    betas = (0.9, 0.999)  # AdamW's defaults

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # One scale per latent coordinate (d,), set by _finish_fit to 1 / that coordinate's std, so that every
        # latent coordinate has unit variance, as whitened patch PCA's have: the tokenizer steps (6: conv VAE ->
        # patch VAE, 7: -> patch AE, 8: -> patch PCA) then change the tokenizer and not the normalization.
        self.register_buffer("latent_scale", torch.ones(self.latent_dim))

    def training_loss(self, x, step, steps, generator, perceptual):
        raise NotImplementedError

    def _check_perceptual(self, perceptual: Perceptual | None) -> None:
        """Raise when the objective needs a perceptual loss that was not given."""

    def fit(self, images: torch.Tensor, labels=None, *, steps: int = 300, batch_size: int = 128,
            lr: float | None = None, device=None, perceptual: Perceptual | None = None, progress: bool = True,
            seed: int = 0, amp: bool | None = None, ckpt_path=None, ckpt_every: int | None = None) -> dict:
        """Train on random batches of ``images`` with AdamW at a constant lr, then set the latent scale.

        The whole dataset tensor is moved to ``device`` (the tokenizer stays there); batch indices come from a
        CPU generator seeded with ``seed``, posterior samples from a device one; ``labels`` are unused.
        ``perceptual(x_rec, x)``: the VQGAN recipe's perceptual loss, on ``device``. ``amp``: bf16 autocast where
        the device supports it. ``ckpt_path``: resumed when it holds a checkpoint of this fit, written every
        ``ckpt_every`` steps, about every minute and on Ctrl-C or SIGTERM (checkpoint.Checkpointer); deleted by
        the caller once the tokenizer is saved. A loss that is not finite stops the fit. Returns training stats."""
        self._check_images(images)
        self._check_perceptual(perceptual)
        device = torch.device(device) if device is not None else self.latent_scale.device
        amp = supports_bf16(device) if amp is None else amp
        cfg = TrainConfig(steps, batch_size, lr or self.default_lr, weight_decay=0.0, betas=self.betas,
                          grad_clip=None, ckpt_every=ckpt_every)
        self.to(device).train()
        x_all, params, desc = images.to(device), list(self.parameters()), f"tokenizer {self.kind}"

        # 1. AdamW at a constant lr; two seeded generators: batch indices (CPU), posterior samples (device).
        optimizer = build_optimizer(params, cfg, device)
        gen = torch.Generator().manual_seed(seed)
        noise_gen = torch.Generator(device=device).manual_seed(seed)

        # 2. Resume from a checkpoint of the same fit, if there is one.
        run = {"kind": self.kind, "config": self.config, "steps": steps, "batch_size": batch_size, "lr": cfg.lr,
               "seed": seed, "amp": amp}
        saved = resume(ckpt_path, run, self, optimizer, gen, noise_gen, device, desc=desc) or {}
        start, seconds_before = saved.get("step", 0), saved.get("seconds", 0.0)
        sums = {k: v.to(device) for k, v in saved.get("sums", {}).items()}  # per-term loss sums, for the means
        bar = Progress(desc, start=start, steps=steps, batch_size=batch_size, log_every=cfg.log_every, device=device,
                       enabled=progress, losses=list(saved.get("losses", [])), window=saved.get("window"))

        def state(step: int) -> dict:
            return {"model": self.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "run": run,
                    "rng": rng_state(gen, noise_gen, device), "sums": dict(sums), "losses": bar.losses,
                    "window": bar.window(), "seconds": seconds_before + bar.elapsed()}

        # 3. For each step: a batch, the loss, one update; then the log and a checkpoint when due.
        with Checkpointer(ckpt_path, state, start=start, steps=steps, every=ckpt_every, seconds=cfg.ckpt_seconds,
                          desc=desc, device=device) as ckpt, bar:
            for step in range(start, steps):
                with ckpt.updating(step):
                    x = x_all[torch.randint(len(x_all), (batch_size,), generator=gen).to(device)]
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                        loss, logs = self.training_loss(x, step, steps, noise_gen, perceptual)
                    check_loss(loss, x, step, desc)
                    update(optimizer, loss, params)
                    for key, value in {"loss": loss, **logs}.items():  # detached tensors: no device sync here
                        sums[key] = sums.get(key, 0.0) + value.detach().float()
                log_point = bar.log(step + 1, loss)
                with bar.paused():
                    ckpt.after_step(step + 1, log_point)
                ckpt.stop_if_requested()
        stats = self._finish_fit(x_all, gen)
        stats.update({"steps": steps, "seconds": seconds_before + bar.elapsed(),
                      "images_per_s": bar.images_per_s(steps) or 0.0, "final_loss": bar.final_loss,
                      **{f"mean_{k}": v.item() / steps for k, v in sums.items()}})
        return stats

    @torch.no_grad()
    def _finish_fit(self, x_all: torch.Tensor, gen: torch.Generator, n_eval: int = 2048) -> dict:
        """Set latent_scale = 1 / std of each raw latent coordinate (over images and tokens) and measure the
        reconstruction MSE. The stats report the mean of the d scales."""
        self.eval()
        x = x_all[torch.randperm(len(x_all), generator=gen)[:n_eval].to(x_all.device)]
        z = batched(self._encode_raw, x, 512)  # (n_eval, L, d)
        self.latent_scale.copy_(1.0 / z.float().flatten(0, 1).std(0).clamp_min(1e-8))  # (d,)
        self.fitted.fill_(True)
        return {"kind": self.kind, "recon_mse": self.reconstruction_mse(x),
                "latent_scale": self.latent_scale.mean().item()}


class PatchAE(LearnedTokenizer):
    """Linear patch-wise autoencoder: z = V x + b (encoder V: d x D), x_hat = U^T z + c.

    Each patch is encoded independently (Tab. 2 'patch-wise AE'); loss ||x - U^T V x||^2 per element.
    The biases play the role of PCA's mean subtraction.
    """

    kind = "patch_ae"
    default_lr = 1e-2  # a linear AE is ill-conditioned; at 3e-3 it is still far from PCA after 300 steps
    variational = False

    def __init__(self, latent_dim=16, image_size=32, channels=1, patch_size=8):
        check_patch_latent_dim(self.kind, latent_dim, patch_size, channels)
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

    def training_loss(self, x, step, steps, generator, perceptual):
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


class ConvVAE(LearnedTokenizer):
    """Conv VAE with stride p / 2 and 2x2 grouping of latent cells into tokens: d = 4c (Tab. 2 footnote).

    Loss (Sec. 4.2): ||x - g(f(x))||^2 + kl_weight * KL per element (kl_weight default 1e-4, slight as
    in LDM), plus for the VQGAN recipe:
      perceptual  (weight ``perceptual_weight``): LPIPS-like distance in a label-trained SmallCNN
                  (passed to fit as ``perceptual``; an ImageNet VGG in the original, which leaks labels);
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

    @property
    def betas(self) -> tuple[float, float]:
        return (0.5, 0.9) if self.adversarial else (0.9, 0.999)  # VQGAN trains its GAN with (0.5, 0.9)

    def _check_perceptual(self, perceptual):
        if self.perceptual and perceptual is None:
            raise ValueError("perceptual=True needs the perceptual loss of a label-trained network: "
                             "fit(..., perceptual=supervised.frozen_perceptual_loss(cnn)); got perceptual=None")

    def training_loss(self, x, step, steps, generator, perceptual):
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
            p_loss = perceptual(x_rec, x)
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


