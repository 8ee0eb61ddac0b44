"""Small helpers behind the figures and tables of notebooks 01-03 (DiT baseline, class conditioning,
tokenizer losses): samples per class, reconstructions side by side, inline-vs-package module checks,
loss curves and the closing "what changed / ours / paper" table.

Everything here is plotting or bookkeeping around the package's own functions (``sampling.ddim_sample``,
``Tokenizer.reconstruct``, ``supervised.embed_images``); no training happens here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from . import sampling, supervised


# --------------------------------------------------------------------------------------------------
# an inline module, written in a notebook for teaching, against the package's
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def copy_and_compare(inline: nn.Module, reference: nn.Module, *inputs, atol: float = 1e-6) -> float:
    """Load ``reference``'s weights into ``inline`` (strict: the parameter names must match), run both
    on ``inputs`` in eval mode and return the largest absolute difference of their outputs.

    Raises ValueError when the outputs differ by more than ``atol`` or have different shapes, so a
    notebook cell fails loudly if the inline version drifts from the package's.
    """
    inline.load_state_dict(reference.state_dict(), strict=True)
    inline.eval()
    reference.eval()
    a, b = inline(*inputs), reference(*inputs)
    if a.shape != b.shape:
        raise ValueError(f"inline output has shape {tuple(a.shape)}, the package's {tuple(b.shape)}")
    diff = (a.float() - b.float()).abs().max().item() if a.numel() else 0.0
    if not torch.allclose(a.float(), b.float(), atol=atol, rtol=0.0):
        raise ValueError(f"inline and package outputs differ by up to {diff:.3g} (> atol={atol})")
    return diff


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


@torch.no_grad()
def predicted_classes(cnn, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """The label-trained CNN's top-1 class for each image, (N,) long on the CPU."""
    cnn.eval()
    dev = next(cnn.parameters()).device
    return torch.cat([cnn(images[i:i + batch_size].to(dev)).argmax(1).cpu()
                      for i in range(0, len(images), batch_size)])


def frechet_between(cnn, a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance between image sets a and b in the CNN's penultimate features. With two disjoint
    sets of real images of the sample count used for generation, it is the value a perfect generator
    would get (finite-sample noise, not zero)."""
    return supervised.frechet_distance(supervised.embed_images(cnn, a), supervised.embed_images(cnn, b))


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
        dev = tok.latent_scale.device
        rec = torch.cat([tok.reconstruct(images[i:i + batch_size].to(dev)).float().cpu()
                         for i in range(0, len(images), batch_size)])
        out[name] = (rec, torch.mean((rec - images.float()) ** 2).item())
    return out


@torch.no_grad()
def perceptual_distance(cnn, a: torch.Tensor, b: torch.Tensor, batch_size: int = 512) -> float:
    """Mean LPIPS-like distance (:func:`supervised.perceptual_loss`) between image sets a and b."""
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    cnn.eval()
    dev = next(cnn.parameters()).device
    total = 0.0
    for i in range(0, len(a), batch_size):
        x, y = a[i:i + batch_size].to(dev), b[i:i + batch_size].to(dev)
        total += supervised.perceptual_loss(cnn, x, y).item() * len(x)
    return total / len(a)


# --------------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------------
def image_rows(rows: Mapping[str, torch.Tensor], n: int = 8, ax: plt.Axes | None = None) -> plt.Axes:
    """One labelled row per entry of ``rows`` ({name: images (N, C, H, W) in [-1, 1]}), its first n
    images side by side: e.g. originals above each tokenizer's reconstructions."""
    if not rows:
        raise ValueError("rows is empty")
    shapes = {tuple(v.shape[1:]) for v in rows.values()}
    if len(shapes) != 1 or any(v.ndim != 4 for v in rows.values()):
        raise ValueError(f"every entry must be (N, C, H, W) with the same C, H, W; got {shapes}")
    c, h, w = shapes.pop()
    canvas = torch.ones(c, len(rows) * h, n * w)  # white where a row has fewer than n images
    for r, images in enumerate(rows.values()):
        for j, img in enumerate(images[:n]):
            canvas[:, r * h:(r + 1) * h, j * w:(j + 1) * w] = img.detach().float().cpu()
    if ax is None:
        _, ax = plt.subplots(figsize=(n * 0.8 + 2, len(rows) * 0.85))
    pic = canvas.clamp(-1, 1).add(1).div(2)
    ax.imshow(pic[0].numpy() if c == 1 else pic.permute(1, 2, 0).numpy(), cmap="gray" if c == 1 else None,
              vmin=0, vmax=1)
    ax.set_yticks(np.arange(len(rows)) * h + h / 2, list(rows))
    ax.set_xticks([])
    return ax


def plot_losses(curves: Mapping[str, Sequence], ax: plt.Axes | None = None) -> plt.Axes:
    """Training-loss curves from ``Result.losses`` ([[step, loss], ...]), one line per name."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for name, losses in curves.items():
        arr = np.asarray(losses, dtype=float).reshape(-1, 2)
        ax.plot(arr[:, 0], arr[:, 1], marker="o" if len(arr) < 20 else None, label=name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.legend()
    return ax


# --------------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------------
def fmt(value, digits: int = 1, signed: bool = False) -> str:
    """A number for a table; None (or NaN) becomes an en dash."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A Markdown table (pandas is not a dependency); cells are str()-ed, pipes escaped."""
    if any(len(r) != len(header) for r in rows):
        raise ValueError(f"every row needs {len(header)} cells: {[len(r) for r in rows]}")

    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *map(line, rows)])
