"""The convolutional VAE behind the paper's baseline tokenizer, and a PatchGAN discriminator.

DiT's tokenizer (the "KL" VQGAN of latent diffusion) maps a 256x256x3 image with stride 8 to a
32x32x4 latent map, and DiT groups 2x2 latent cells into one token (arXiv 2401.14404, Tab. 2 footnote).
At 32x32 pixels this project keeps the same token layout with stride 4 instead: 32x32 -> 8x8 x c, then
2x2 grouping -> 4x4 = 16 tokens of d = 4c. In general a token covers p x p pixels, the conv stride is
p / 2 and the number of stride-2 stages is log2(p / 2).

The VQGAN recipe adds two losses to ||x - g(f(x))||^2 + KL (the conv VAE objective of Sec. 4.2):
a perceptual loss (see :mod:`ldae_lite.supervised`) and an adversarial loss from a PatchGAN
discriminator with the hinge loss. :func:`adversarial_losses` computes both sides of the game so that
a single backward pass through their sum gives each network only its own gradient.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call


def _norm(channels: int) -> nn.GroupNorm:
    # GroupNorm, not BatchNorm: no running statistics, so the networks behave the same in train and
    # eval mode and the discriminator can be evaluated functionally with detached parameters.
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    """x + conv(silu(norm(conv(silu(norm(x)))))) at constant width and resolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(_norm(channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                  _norm(channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


class ConvEncoder(nn.Module):
    """(N, C, H, W) -> mean and log-variance of the posterior, each (N, c, H / s, W / s), s = 2**num_down.

    Stage i is a strided 4x4 conv to width * 2**i channels (no full-resolution conv: on a CPU those
    cost the most time for the least work); a residual block then works at the latent resolution.
    """

    def __init__(self, channels: int, latent_channels: int, width: int = 32, num_down: int = 2):
        super().__init__()
        layers, c_in = [], channels
        for i in range(num_down):  # each stage halves the resolution
            layers += [nn.Conv2d(c_in, width * 2**i, 4, stride=2, padding=1), nn.SiLU()]
            c_in = width * 2**i
        layers += [ResBlock(c_in), _norm(c_in), nn.SiLU(), nn.Conv2d(c_in, 2 * latent_channels, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        mean, logvar = self.net(x).chunk(2, dim=1)  # (N, c, h, w) each
        return mean, logvar.clamp(-30.0, 20.0)


class ConvDecoder(nn.Module):
    """(N, c, h, w) latent map -> (N, C, h * s, w * s) image; mirrors :class:`ConvEncoder`."""

    def __init__(self, channels: int, latent_channels: int, width: int = 32, num_down: int = 2):
        super().__init__()
        w = width * 2 ** (num_down - 1)
        layers = [nn.Conv2d(latent_channels, w, 3, padding=1), ResBlock(w), _norm(w), nn.SiLU()]
        for i in reversed(range(num_down)):  # each stage doubles the resolution
            c_out = width * 2 ** (i - 1) if i > 0 else channels
            layers.append(nn.ConvTranspose2d(w, c_out, 4, stride=2, padding=1))
            layers += [nn.SiLU()] if i > 0 else []
            w = c_out
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z)


class PatchDiscriminator(nn.Module):
    """PatchGAN-style discriminator: (N, C, H, W) -> (N, 1, H / 4, W / 4) real/fake logits per patch.

    Each logit sees a receptive field of about 14x14 pixels, so the loss judges local texture,
    as in pix2pix and VQGAN (which use BatchNorm and three strided layers at 256 px).
    """

    def __init__(self, channels: int, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), _norm(2 * width), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), _norm(2 * width), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 1, 3, padding=1),
        )

    def forward(self, x):
        return self.net(x)


def adversarial_losses(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor):
    """Generator and discriminator hinge losses whose sum can be minimised with ONE backward pass.

    1. generator term  -mean D(fake): D is evaluated with *detached* parameters
       (torch.func.functional_call), so its gradient reaches only the generator, through ``fake``;
    2. discriminator term  mean relu(1 - D(real)) + mean relu(1 + D(fake.detach())): ``fake`` is
       detached, so its gradient reaches only the discriminator's parameters.
    Returns (g_loss, d_loss). Because each term is blind to the other network, one optimizer over both
    networks and one backward of (reconstruction + w * g_loss + d_loss) train both sides of the game.
    """
    frozen = {name: p.detach() for name, p in discriminator.named_parameters()}
    frozen.update(dict(discriminator.named_buffers()))
    g_loss = -functional_call(discriminator, frozen, (fake,)).mean()
    logits_real, logits_fake = discriminator(torch.cat([real, fake.detach()])).chunk(2)  # one D pass
    d_loss = F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean()
    return g_loss, d_loss
