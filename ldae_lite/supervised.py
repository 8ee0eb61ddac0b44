"""A small label-trained CNN: the supervised network behind the perceptual loss and the Frechet distance.

The VQGAN tokenizer of the paper's baseline (arXiv 2401.14404, Tab. 1 rows 1-2) is trained with a
perceptual loss (LPIPS) computed from an ImageNet-supervised VGG. The paper removes that loss in row 3
because it leaks label information into a supposedly self-supervised pipeline. Offline there are no
ImageNet VGG weights, so this project trains :class:`SmallCNN` on the dataset's own labels and uses its
intermediate features instead: the leak is then explicit, which is exactly the paper's point.

The same network also gives the features for a Frechet distance between two image sets (an FID-like
number for the generation-quality column of Tab. 1; the paper's FID uses an Inception network).
"""

from __future__ import annotations

import copy
import functools
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .batching import batched
from .checkpoint import Checkpointer, atomic_save, check_finite, resume, rng_state
from .progress import Progress
from .train import TrainConfig, build_optimizer, check_loss, lr_at, set_lr, update

LAYERS = ("block1", "block2", "block3")


class SmallCNN(nn.Module):
    """Three conv blocks, global average pooling and a linear classifier (fast on a CPU).

    block1: (N, C, 32, 32) -> (N, 32, 16, 16); block2: -> (N, 64, 8, 8); block3: -> (N, 128, 8, 8).
    """

    def __init__(self, channels: int = 1, num_classes: int = 10, width: int = 32):
        super().__init__()
        if channels < 1 or num_classes < 2:
            raise ValueError(f"channels={channels} must be >= 1 and num_classes={num_classes} >= 2")
        self.channels, self.num_classes, self.width = channels, num_classes, width
        w = width

        def block(c_in, c_out, stride):
            # a strided 4x4 conv halves the resolution (cheaper on a CPU than conv + max-pool)
            conv = nn.Conv2d(c_in, c_out, 4, stride=2, padding=1) if stride == 2 else \
                nn.Conv2d(c_in, c_out, 3, padding=1)
            return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU())

        self.block1 = block(channels, w, stride=2)
        self.block2 = block(w, 2 * w, stride=2)
        self.block3 = block(2 * w, 4 * w, stride=1)
        self.head = nn.Linear(4 * w, num_classes)
        self.embed_dim = 4 * w

    def features(self, x: torch.Tensor, layers=LAYERS) -> list[torch.Tensor]:
        """Intermediate activations of the named blocks, in forward order."""
        unknown = [name for name in layers if name not in LAYERS]
        if unknown:
            raise ValueError(f"unknown layers {unknown}; allowed: {LAYERS}")
        out = []
        for name in LAYERS:
            x = getattr(self, name)(x)
            if name in layers:
                out.append(x)
            if len(out) == len(layers):
                break
        return out

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features: the global average pool of block3, (N, 4 * width)."""
        return self.features(x, layers=("block3",))[0].mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))  # (N, num_classes) logits


def train_cnn(images: torch.Tensor, labels: torch.Tensor, *, steps: int = 300, batch_size: int = 128,
              lr: float = 1e-2, device=None, seed: int = 0, progress: bool = True, width: int = 32,
              ckpt_path=None, ckpt_every: int | None = None):
    """Train a :class:`SmallCNN` on (images, labels) with AdamW and a cosine learning-rate decay.

    Random batches come from a seeded generator over the whole dataset tensor (kept on ``device``).
    ``ckpt_path``: resumed when it holds a checkpoint of this training, written every ``ckpt_every``
    steps, about every minute and on Ctrl-C or SIGTERM (:class:`~ldae_lite.checkpoint.Checkpointer`).
    Returns (cnn in eval mode, stats dict with steps, seconds, final_loss, train_accuracy in %).
    """
    if images.ndim != 4 or labels.shape != images.shape[:1]:
        raise ValueError(f"expected images (N, C, H, W) and labels (N,), got {tuple(images.shape)} "
                         f"and {tuple(labels.shape)}")
    device = torch.device(device or "cpu")
    # AdamW's default betas; weight decay on every parameter; cosine decay from lr to 0, no warm-up.
    cfg = TrainConfig(steps, batch_size, lr, warmup_frac=0.0, weight_decay=1e-4, betas=(0.9, 0.999),
                      grad_clip=None, ckpt_every=ckpt_every)
    torch.manual_seed(seed)  # the network's initialisation
    cnn = SmallCNN(images.shape[1], int(labels.max()) + 1, width=width).to(device)
    x_all, y_all = images.to(device), labels.to(device)

    # 1. AdamW and a seeded generator of batch indices; resume from a checkpoint of the same training.
    params = list(cnn.parameters())
    optimizer = build_optimizer(params, cfg, device, decay_vectors=True)
    gen = torch.Generator().manual_seed(seed)
    run = {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "width": width,
           "num_classes": cnn.num_classes}
    saved = resume(ckpt_path, run, cnn, optimizer, gen, None, device, desc="supervised cnn") or {}
    start, seconds_before = saved.get("step", 0), saved.get("seconds", 0.0)
    bar = Progress("supervised cnn", start=start, steps=steps, batch_size=batch_size, log_every=cfg.log_every,
                   device=device, enabled=progress, losses=list(saved.get("losses", [])), window=saved.get("window"))

    def state(step: int) -> dict:
        return {"model": cnn.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "run": run,
                "rng": rng_state(gen, None, device), "losses": bar.losses, "window": bar.window(),
                "seconds": seconds_before + bar.elapsed()}

    # 2. For each step: the lr, a batch, the loss, one update; then the log and a checkpoint when due.
    cnn.train()
    with Checkpointer(ckpt_path, state, start=start, steps=steps, every=ckpt_every, seconds=cfg.ckpt_seconds,
                      desc="supervised cnn", device=device) as ckpt, bar:
        for step in range(start, steps):
            with ckpt.updating(step):
                set_lr(optimizer, lr_at(step, cfg))
                idx = torch.randint(len(x_all), (batch_size,), generator=gen).to(device)  # (B,)
                x = x_all[idx]
                loss = F.cross_entropy(cnn(x), y_all[idx])
                check_loss(loss, x, step, "supervised cnn")
                update(optimizer, loss, params)
            log_point = bar.log(step + 1, loss)
            with bar.paused():
                ckpt.after_step(step + 1, log_point)
            ckpt.stop_if_requested()
    cnn.eval()
    subset = torch.randperm(len(x_all), generator=gen)[:5000].to(device)
    stats = {"steps": steps, "seconds": seconds_before + bar.elapsed(), "final_loss": bar.final_loss,
             "train_accuracy": accuracy(cnn, x_all[subset], y_all[subset])}
    return cnn, stats


def save_cnn(cnn: SmallCNN, path) -> None:
    """Write the constructor arguments and weights atomically (see :func:`~ldae_lite.checkpoint.atomic_save`)."""
    atomic_save({"config": {"channels": cnn.channels, "num_classes": cnn.num_classes, "width": cnn.width},
                 "state_dict": {k: v.detach().cpu() for k, v in cnn.state_dict().items()}}, path)


def load_cnn(path, map_location="cpu") -> SmallCNN:
    """Rebuild a network written by :func:`save_cnn` (in eval mode); ValueError naming the tensor when a
    weight is not finite."""
    payload = torch.load(path, map_location=map_location, weights_only=True)
    cnn = SmallCNN(**payload["config"])
    cnn.load_state_dict(check_finite(payload["state_dict"], f"CNN {path}"))
    return cnn.to(map_location).eval()


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


@torch.no_grad()
def predicted_classes(cnn: SmallCNN, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """The CNN's top-1 class for each image, (N,) long on the CPU (run in eval mode; the mode is restored)."""
    was_training = cnn.training
    cnn.eval()
    pred = batched(lambda x: cnn(x).argmax(dim=1).cpu(), images, batch_size, device=_device_of(cnn))  # (N,)
    cnn.train(was_training)
    return pred


def accuracy(cnn: SmallCNN, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1024) -> float:
    """Top-1 accuracy in percent."""
    pred = predicted_classes(cnn, images, batch_size)  # (N,)
    return 100.0 * (pred == labels.cpu()).sum().item() / max(len(images), 1)


def perceptual_loss(cnn: SmallCNN, x: torch.Tensor, y: torch.Tensor, layers=LAYERS) -> torch.Tensor:
    """LPIPS-like distance between image batches x and y (a scalar averaged over the batch).

    1. features of each listed block for both images, (N, C_l, H_l, W_l);
    2. unit-normalise each spatial feature vector across channels (LPIPS's normalisation);
    3. squared difference summed over channels, averaged over positions; then averaged over layers.
    LPIPS additionally learns per-channel weights from human judgements; here every channel weighs 1.
    Gradients flow to x and y; freeze the network's parameters to use it as a loss.
    """
    feats_x, feats_y = cnn.features(x, layers), cnn.features(y, layers)  # [(N, C_l, H_l, W_l), ...] each
    total = 0.0
    for fx, fy in zip(feats_x, feats_y):
        fx = fx / (fx.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-8)
        fy = fy / (fy.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-8)
        total = total + (fx - fy).pow(2).sum(dim=1).mean()
    return total / len(feats_x)


def frozen_perceptual_loss(cnn: SmallCNN, layers=LAYERS) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``perceptual(x, y)``: :func:`perceptual_loss` in a frozen copy of ``cnn`` (eval mode, no parameter
    gradients; the caller's network is untouched). What a VQGAN-style tokenizer's fit takes as its
    ``perceptual`` argument."""
    frozen = copy.deepcopy(cnn).eval().requires_grad_(False)
    return functools.partial(perceptual_loss, frozen, layers=layers)


@torch.no_grad()
def embed_images(cnn: SmallCNN, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Penultimate features for a whole image set, (N, 4 * width) on the CPU (for Frechet distance)."""
    cnn.eval()
    return batched(lambda x: cnn.embed(x).float().cpu(), images, batch_size, device=_device_of(cnn))


def frechet_distance(feats_a, feats_b) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N_a, F) and (N_b, F).

    d^2 = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), in float64. The trace of the matrix
    square root is computed from eigenvalues: (S_a S_b)^(1/2) has the same eigenvalues as the
    symmetric PSD matrix S_a^(1/2) S_b S_a^(1/2), so no complex sqrtm round-off appears.
    """
    a = np.asarray(feats_a.cpu() if isinstance(feats_a, torch.Tensor) else feats_a, dtype=np.float64)
    b = np.asarray(feats_b.cpu() if isinstance(feats_b, torch.Tensor) else feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"expected two feature sets (N, F) with equal F and N >= 2, got {a.shape}, {b.shape}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # 1. S_a^(1/2) from the eigendecomposition of the symmetric PSD S_a
    w, v = np.linalg.eigh(cov_a)
    sqrt_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    # 2. Tr (S_a S_b)^(1/2) = sum of sqrt(eigenvalues of S_a^(1/2) S_b S_a^(1/2))
    m = sqrt_a @ cov_b @ sqrt_a
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    dist = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_sqrt
    return float(max(dist, 0.0))
