"""Every tokenizer by kind: build one (``make_tokenizer``) and rebuild a saved one (``load_tokenizer``).

The registry sits above the tokenizer families (base.py, pca.py, learned.py), so no family imports another.
"""

from __future__ import annotations

import torch

from .base import Tokenizer
from .learned import ConvVAE, PatchAE, PatchVAE
from .pca import PatchPCA, PixelTokenizer


def load_tokenizer(path, map_location="cpu") -> Tokenizer:
    """Rebuild a tokenizer written by :meth:`Tokenizer.save`."""
    payload = torch.load(path, map_location=map_location, weights_only=True)
    tokenizer = make_tokenizer(payload["kind"], **payload["config"])
    tokenizer.load_state_dict(payload["state_dict"])
    return tokenizer


def _classes() -> dict:
    """kind -> (class, preset options)."""
    return {"vqgan": (ConvVAE, {"perceptual": True, "adversarial": True}),
            "conv_vae_adv": (ConvVAE, {"adversarial": True}),
            "conv_vae": (ConvVAE, {}),
            "patch_vae": (PatchVAE, {}),
            "patch_ae": (PatchAE, {}),
            "patch_pca": (PatchPCA, {}),
            "pixel": (PixelTokenizer, {})}


KINDS = tuple(_classes())  # every kind make_tokenizer builds: Recipe.tokenizer's allowed values


def make_tokenizer(kind: str, latent_dim: int | None = None, image_size: int = 32, channels: int = 1,
                   patch_size: int = 8, **opts) -> Tokenizer:
    """Build an (unfitted) tokenizer by kind; latent_dim None means 16 (pixel: D = p * p * C).

    opts go to the class: e.g. whiten/num_patches (PCA), kl_weight, width, perceptual_weight (conv VAE).
    """
    classes = _classes()
    if kind not in classes:
        raise ValueError(f"unknown tokenizer kind {kind!r}; allowed: {', '.join(KINDS)}")
    cls, preset = classes[kind]
    if latent_dim is None and kind != "pixel":
        latent_dim = 16
    tokenizer = cls(latent_dim, image_size, channels, patch_size, **{**preset, **opts})
    tokenizer.kind = kind  # "vqgan" and "conv_vae_adv" are ConvVAE presets
    return tokenizer
