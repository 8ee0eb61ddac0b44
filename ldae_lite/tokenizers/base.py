"""The tokenizer interface: images (N, C, H, W) <-> per-token latents (N, L, d); saving, loading, building.

Every tokenizer cuts an image into L = (H / p)^2 tokens of p x p pixels and gives each a d-dim latent.
Subclasses implement ``_encode_raw`` and ``_decode_raw`` (the unscaled maps) and ``fit``; this base class
adds the shape checks, the latent scale and persistence. :func:`make_tokenizer` builds one by kind.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import validate
from ..batching import batched
from ..checkpoint import atomic_save


def check_patch_latent_dim(kind: str, latent_dim: int, patch_size: int, channels: int) -> None:
    """A patch-wise tokenizer maps a D-dim patch to d <= D numbers."""
    D = validate.integer("patch_size", patch_size, low=1) ** 2 * validate.integer("channels", channels, low=1)
    if not 1 <= validate.integer(f"{kind} latent_dim", latent_dim) <= D:
        raise validate.BadValue(f"{kind} latent_dim={latent_dim} must lie in 1..{D}, the patch dimension "
                                f"D = patch_size**2 * channels = {patch_size}*{patch_size}*{channels}")


class Tokenizer(nn.Module):
    """Base class: geometry, latent scaling, shape checks, reconstruction error and saving.

    Subclasses implement ``_encode_raw``, ``_decode_raw`` and ``fit(images, labels=None, **options)
    -> stats dict``; those trained by gradient descent derive from
    :class:`~ldae_lite.tokenizers.learned.LearnedTokenizer`, which holds their training loop.
    """

    kind = "base"

    def __init__(self, latent_dim: int, image_size: int = 32, channels: int = 1, patch_size: int = 8):
        super().__init__()
        for name, value in (("image_size", image_size), ("channels", channels), ("patch_size", patch_size),
                            ("latent_dim", latent_dim)):
            validate.integer(name, value, low=1)
        if image_size % patch_size:
            raise validate.BadValue(f"image_size={image_size} is not divisible by patch_size={patch_size}; "
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

    def fit(self, images: torch.Tensor, labels=None, **options) -> dict:
        raise NotImplementedError

    @torch.no_grad()
    def reconstruction_mse(self, images: torch.Tensor, batch_size: int = 512) -> float:
        """Mean squared error of reconstruct(images) per pixel (images in [-1, 1])."""
        sums = batched(lambda x: F.mse_loss(self.reconstruct(x), x, reduction="sum").view(1).cpu(), images,
                       batch_size, device=self.latent_scale.device)  # (number of batches,)
        return sum(sums.tolist()) / images.numel()

    # ---- persistence --------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write kind, constructor arguments and state dict (fitted buffers included) atomically."""
        atomic_save({"kind": self.kind, "config": dict(self.config),
                     "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}}, path)


def save_tokenizer(tokenizer: Tokenizer, path) -> None:
    """Function form of :meth:`Tokenizer.save`."""
    tokenizer.save(path)
