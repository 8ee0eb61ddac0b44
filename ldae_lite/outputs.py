"""What trained models make of images, and how far apart two sets of images are.

Denoised examples (Fig. 8: clean image -> noise in the latent -> what the network sees -> what it
predicts), DDIM samples asked for each class, tokenizer reconstructions, and the label-trained CNN's
measures on image sets (its classes, the Frechet distance in its features, the perceptual distance).
Everything is built on the package's own functions (``sampling.ddim_sample``, ``Tokenizer.reconstruct``,
``supervised.embed_images``); no training happens here. :mod:`ldae_lite.figures` draws the results.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from . import sampling, supervised
from .batching import batched
from .patches import unpatchify


# --------------------------------------------------------------------------------------------------
# Fig. 8: clean image -> noise in the latent -> what the network sees -> what it predicts
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def denoise_examples(tokenizer, objective, model, images: torch.Tensor, sigmas, seed: int = 0) -> dict:
    """Denoise ``images`` (N, C, H, W) at each noise level in ``sigmas``, everything as images.

    For each sigma the model runs at the step t whose sigma_t is closest (the network is conditioned on
    t). One noise draw eps (seeded) is scaled to every level, so the columns differ only in sigma.
    Returns dict(clean (N, C, H, W); projected (N, C, H, W): the clean input as the network sees it at
    sigma = 0; noisy (S, N, C, H, W): the input as the network sees it, i.e. the decoded noisy latent;
    denoised (S, N, C, H, W): the prediction as an image, whatever the output space; sigmas, ts: the
    sigma_t and t actually used). All on the CPU, clamped to [-1, 1].
    """
    if objective.mask_ratio > 0:
        raise ValueError("denoise_examples needs a noise objective; this one masks patches (mask_ratio > 0)")
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got {tuple(images.shape)}")
    model.eval()
    dev = next(model.parameters()).device
    sched, p, c = objective.schedule, objective.p, objective.c
    x0 = images.to(dev).float()
    z0 = tokenizer.encode(x0).float()  # (N, L, d)
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn(z0.shape, generator=gen).to(dev)  # (N, L, d), drawn on the CPU: the same on any device
    out = dict(clean=x0.cpu(), projected=tokenizer.decode(z0).clamp(-1, 1).cpu(), noisy=[], denoised=[],
               sigmas=[], ts=[])
    for sigma in sigmas:
        t = torch.full((len(x0),), sched.t_for_sigma(float(sigma)), dtype=torch.long, device=dev)  # (N,)
        # 1. eq. (1) in the latent: z_t = gamma_t z_0 + sigma_t eps
        zt = sched.add_noise(z0, t, eps)  # (N, L, d)
        # 2. what the network sees: z_t itself, or its inverse PCA x_t = V^T z_t (Sec. 4.3)
        inp = objective.net_input(zt)  # (N, L, in_dim)
        noisy = unpatchify(inp, p, c) if objective.input_space == "image" else tokenizer.decode(zt)
        # 3. its prediction, as an image: pixels directly, or the latent estimate z_0 decoded
        pred = model(inp, t.float(), None).float()  # (N, L, out_dim)
        if objective.output_space == "image":
            denoised = unpatchify(objective.pixels(pred), p, c)
        else:
            denoised = tokenizer.decode(objective.predict_z0(pred, zt, t))
        out["noisy"].append(noisy.clamp(-1, 1).cpu())
        out["denoised"].append(denoised.clamp(-1, 1).cpu())
        out["sigmas"].append(float(sched.sigma(t[:1])))
        out["ts"].append(int(t[0]))
    out["noisy"], out["denoised"] = torch.stack(out["noisy"]), torch.stack(out["denoised"])  # (S, N, C, H, W)
    return out


# --------------------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def samples_per_class(model, obj, per_class: int = 8, *, num_classes: int = 10, steps: int = 25,
                      seed: int = 0, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """DDIM samples asked for class 0, 1, ..., ``per_class`` of each: (images (K * per_class, C, H, W),
    labels (K * per_class,)), class-major. An unconditional model ignores the labels (they are then
    only the row a sample is drawn in, not what it shows)."""
    if per_class < 1 or num_classes < 1:
        raise ValueError(f"per_class={per_class} and num_classes={num_classes} must be >= 1")
    labels = torch.arange(num_classes).repeat_interleave(per_class)  # (K * per_class,)
    images = sampling.ddim_sample(model, obj, len(labels), labels=labels, steps=steps, seed=seed, device=device)
    return images.cpu(), labels


# --------------------------------------------------------------------------------------------------
# tokenizers
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def reconstructions(tokenizers: Mapping[str, nn.Module], images: torch.Tensor,
                    batch_size: int = 512) -> dict[str, tuple[torch.Tensor, float]]:
    """{name: (reconstructions (N, C, H, W) on the CPU, per-pixel MSE)} for each fitted tokenizer."""
    out = {}
    for name, tok in tokenizers.items():
        tok.eval()
        rec = batched(lambda x: tok.reconstruct(x).float().cpu(), images, batch_size,
                      device=tok.latent_scale.device)  # (N, C, H, W)
        out[name] = (rec, torch.mean((rec - images.float()) ** 2).item())
    return out


# --------------------------------------------------------------------------------------------------
# the label-trained CNN's measures on image sets
# --------------------------------------------------------------------------------------------------
predicted_classes = supervised.predicted_classes  # the CNN's top-1 class for each image, (N,) on the CPU


def frechet_between(cnn, a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance between image sets a and b in the CNN's penultimate features. With two disjoint
    sets of real images of the sample count used for generation, it is the value a perfect generator
    would get (finite-sample noise, not zero)."""
    return supervised.frechet_distance(supervised.embed_images(cnn, a), supervised.embed_images(cnn, b))


@torch.no_grad()
def perceptual_distance(cnn, a: torch.Tensor, b: torch.Tensor, batch_size: int = 512) -> float:
    """Mean LPIPS-like distance (:func:`supervised.perceptual_loss`) between image sets a and b."""
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    cnn.eval()
    dev = next(cnn.parameters()).device

    def batch_sum(rows: torch.Tensor) -> torch.Tensor:  # (B,) indices of a batch of pairs -> (1,) loss sum
        loss = supervised.perceptual_loss(cnn, a[rows].to(dev), b[rows].to(dev))  # mean over the batch
        return torch.tensor([loss.item() * len(rows)], dtype=torch.float64)

    sums = batched(batch_sum, torch.arange(len(a)), batch_size)  # (number of batches,)
    return sum(sums.tolist()) / len(a)
