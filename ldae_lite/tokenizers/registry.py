"""Every tokenizer by kind: build one (``make_tokenizer``) and rebuild a saved one (``load_tokenizer``).

The registry sits above the tokenizer families (base.py, pca.py, learned.py), so no family imports another.
"""

from __future__ import annotations

import torch

from .. import validate
from ..checkpoint import check_finite
from .base import Tokenizer
from .learned import ConvVAE, PatchAE, PatchVAE
from .pca import PatchPCA, PixelTokenizer


def load_tokenizer(path, map_location="cpu") -> Tokenizer:
    """Rebuild a tokenizer written by :meth:`Tokenizer.save`; ValueError naming the tensor when a fitted value
    (a weight, the PCA basis, the latent scale) is not finite."""
    payload = torch.load(path, map_location=map_location, weights_only=True)
    tokenizer = make_tokenizer(payload["kind"], **payload["config"])
    tokenizer.load_state_dict(check_finite(payload["state_dict"], f"tokenizer {path}"))
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
    cls, preset = _classes()[validate.one_of("tokenizer kind", kind, KINDS)]
    latent_dim = validate.optional_integer("latent_dim", latent_dim, low=1)
    for name, value in (("image_size", image_size), ("channels", channels), ("patch_size", patch_size)):
        validate.integer(name, value, low=1)
    if latent_dim is None and kind != "pixel":
        latent_dim = 16
    tokenizer = cls(latent_dim, image_size, channels, patch_size, **{**preset, **opts})
    tokenizer.kind = kind  # "vqgan" and "conv_vae_adv" are ConvVAE presets
    return tokenizer
