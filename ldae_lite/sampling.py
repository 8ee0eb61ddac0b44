"""Generating images with a trained denoiser (DDIM), and a Frechet distance to judge them.

The paper reports FID for the generative steps of its trajectory (Tab. 1) to make one point: the
probe improves while generation gets worse. We make the same point at small scale with a Frechet
distance computed in the feature space of the label-trained CNN (:mod:`ldae_lite.supervised`),
since offline there is no Inception network.
"""

from __future__ import annotations

import torch

from . import device as device_mod
from . import supervised
from .batching import batched
from .objectives import Objective


@torch.no_grad()
def ddim_sample(model, obj: Objective, n: int, *, labels: torch.Tensor | None = None, steps: int = 50,
                seed: int = 0, device=None) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) from the most noisy step down to t = 0. Returns images (n, C, H, W).

    At each step the network's output is turned into an estimate of the clean latent z0_hat
    (whatever it predicts), the implied noise eps_hat = (z_t - gamma_t z0_hat) / sigma_t, and the next
    latent z_s = gamma_s z0_hat + sigma_s eps_hat (Song et al. 2021, eq. 12 with eta = 0).
    """
    device = device or next(model.parameters()).device
    model.eval()
    sched = obj.schedule
    g = torch.Generator(device="cpu").manual_seed(seed)
    length = obj.tok.num_tokens
    ts = torch.linspace(sched.steps - 1, 0, steps).round().long().unique_consecutive().tolist()
    t0 = torch.full((n,), ts[0], dtype=torch.long, device=device)
    z = sched.sigma(t0).view(-1, 1, 1) * torch.randn((n, length, obj.d), generator=g).to(device)  # (n, L, d)
    y = labels.to(device) if (labels is not None and obj.class_cond) else None
    for i, t_now in enumerate(ts):
        t = torch.full((n,), t_now, dtype=torch.long, device=device)
        with device_mod.autocast(device):
            out = model(obj.net_input(z), t.float(), y).float()
        z0_hat = obj.predict_z0(out, z, t)
        if i == len(ts) - 1:
            z = z0_hat
            break
        s = torch.full((n,), ts[i + 1], dtype=torch.long, device=device)
        sigma_t = sched.sigma(t).view(-1, 1, 1).clamp(min=1e-4)
        eps_hat = (z - sched.gamma(t).view(-1, 1, 1) * z0_hat) / sigma_t
        z = sched.gamma(s).view(-1, 1, 1) * z0_hat + sched.sigma(s).view(-1, 1, 1) * eps_hat
    return obj.tok.decode(z).clamp(-1, 1)


def frechet_of_samples(model, obj: Objective, cnn, real_images: torch.Tensor, *, n: int, steps: int,
                       seed: int = 0, device=None, batch_size: int = 500) -> float:
    """Frechet distance between ``n`` DDIM samples (labels cycling over the classes when the model is
    class-conditional) and ``n`` real images, in the CNN's penultimate features."""
    n = min(n, len(real_images))

    def samples(i: torch.Tensor) -> torch.Tensor:  # (B,) sample indices -> (B, C, H, W) on the CPU
        return ddim_sample(model, obj, len(i), labels=i % 10, steps=steps, seed=seed + int(i[0]), device=device).cpu()

    fake = batched(samples, torch.arange(n), batch_size)  # (n, C, H, W)
    real = real_images[:n]
    return float(supervised.frechet_distance(supervised.embed_images(cnn, fake, batch_size=512),
                                             supervised.embed_images(cnn, real, batch_size=512)))
