"""What the denoiser sees and what it is asked to predict: the corruption, the target and the loss.

This is the only module that adds noise to a batch. The network (:mod:`ldae_lite.models`) never sees a
schedule or a PCA basis; it maps tokens to tokens. An :class:`Objective` turns a clean batch into

    network input  (N, L, in_dim)   noised latent z_t, or its inverse PCA in image space (Sec. 4.3)
    condition t    (N,)             the noise step
    target         (N, L, out_dim)  eps, the clean latent z_0, its inverse PCA, or the original image

and weighs the error with lambda_t, following arXiv 2401.14404 eq. (2)-(4).
"""

from __future__ import annotations

import torch

from . import validate
from .batching import batched
from .noise import NoiseSchedule
from .patches import patchify, unpatchify

TARGETS = ("eps", "x0", "image")
SPACES = ("latent", "image")


class Objective:
    """Corruption + target + loss for one recipe.

    tokenizer: a fitted tokenizer with encode/decode ((N, C, H, W) <-> (N, L, d)).
    schedule: the :class:`~ldae_lite.noise.NoiseSchedule` (sigma_t, gamma_t, t sampling).
    target: 'eps' (eq. 2), 'x0' (eq. 3, the clean latent, or its inverse PCA when output_space='image')
        or 'image' (the original image, eq. 4, residual weighted in the full PCA basis).
    input_space / output_space: 'latent' or 'image' (through inverse PCA; Tab. 3 rows 11-12). With
        whitened PCA latents, an image-space output is read in whitened PCA coordinates (see :meth:`pixels`).
    mask_ratio: > 0 replaces noise by MAE-style masking of image patches (a comparison on the same
        backbone; not part of the paper's trajectory).
    """

    def __init__(self, tokenizer, schedule: NoiseSchedule, *, target="eps", input_space="latent",
                 output_space="latent", loss_weight="none", residual_weight=0.1, class_cond=False,
                 mask_ratio=0.0):
        if target not in TARGETS:
            raise ValueError(f"target={target!r} is not one of {TARGETS}")
        for name, value in (("input_space", input_space), ("output_space", output_space)):
            if value not in SPACES:
                raise ValueError(f"{name}={value!r} is not one of {SPACES}")
        self.tok, self.schedule = tokenizer, schedule
        self.target, self.input_space, self.output_space = target, input_space, output_space
        self.loss_weight, self.residual_weight = loss_weight, residual_weight
        self.class_cond, self.mask_ratio = class_cond, mask_ratio
        self.d = tokenizer.latent_dim
        self.p, self.c = tokenizer.patch_size, tokenizer.channels
        self.D = self.p * self.p * self.c  # pixels per patch (token)
        self.needs_image = "image" in (input_space, output_space) or target == "image"
        # Image output with whitened PCA latents: the network's image is measured, and parametrized, in
        # the full PCA basis in whitened units (s_i per coordinate), the units its latent loss had up to
        # step 11. None: pixels and the orthonormal basis, as in the paper's equations.
        whitened = output_space == "image" and bool(getattr(tokenizer, "whiten", False))
        self.image_scales = tokenizer.coordinate_scales() if whitened else None  # (D,) or None

    # -- dimensions the network needs ---------------------------------------------------------------
    @property
    def in_dim(self) -> int:
        return self.D if self.input_space == "image" else self.d

    @property
    def out_dim(self) -> int:
        return self.D if self.output_space == "image" else self.d

    # -- data ------------------------------------------------------------------------------------
    @torch.no_grad()
    def prepare(self, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Encode a whole split once. Returns per-token rows (N, L, d [+ D]): the clean latent z_0,
        followed by the image patch x_0 when the recipe works in image space. A value that is not finite is
        refused here, saying how many, before any training or probe sees it."""
        def rows(x: torch.Tensor) -> torch.Tensor:
            z0 = self.tok.encode(x).float()  # (B, L, d)
            return torch.cat([z0, patchify(x, self.p)], -1) if self.needs_image else z0

        out = batched(rows, images, batch_size)  # (N, L, d [+ D])
        return validate.finite(out, f"the {self.tok.kind} tokenizer's latents (Objective.prepare)")

    def split(self, rows: torch.Tensor):
        """(N, L, d [+ D]) -> z_0 (N, L, d), x_0 patches (N, L, D) or None."""
        return rows[..., :self.d], (rows[..., self.d:] if self.needs_image else None)

    def to_patches(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse PCA (or any decoder) of latent tokens, as image patches: (N, L, d) -> (N, L, D)."""
        return patchify(self.tok.decode(z), self.p)

    def pixels(self, out: torch.Tensor) -> torch.Tensor:
        """The network's image-space output as image patches (N, L, D).

        Orthonormal PCA (the paper's equations): the output *is* the pixels. Whitened PCA latents: the
        output u is the image in the full PCA basis in whitened units, u_i = V_i (x - mean) / s_i (s_i =
        sqrt(lambda_i) for the first d, as in encode; sqrt(lambda_d) after), so the pixels are
        V_full^T (s * u) + mean. That is the same function class (one fixed invertible linear map after
        the network's last Linear), but each output coordinate moves at the scale of its own target. A
        head that predicts raw pixels instead moves whitened coordinate i 1/s_i times as fast as its
        weights, and Adam gives every weight about the same step: the low-variance components then get a
        much larger effective learning rate than the top ones. Measured on Fashion-MNIST-M (lecture, seed
        0): step 12 probed 55.9 that way against 62.5 at step 11, and 63.1 this way against 63.3.
        """
        if self.image_scales is None:
            return out
        s = self.image_scales.to(out.dtype)
        return out @ (s[:, None] * self.tok.basis.to(out.dtype)) + self.tok.mean.to(out.dtype)

    def image_error(self, target: torch.Tensor, out: torch.Tensor, w: float) -> torch.Tensor:
        """Per-token error (N, L) of an image-space output against target image patches: eq. (4)'s
        sum_i w_i r_i^2 / D over the full PCA basis (w_i = 1 for i <= d, w after), r in whitened units
        when the latents are whitened (so steps 11 -> 12 keep the loss's units), else in pixels."""
        if self.image_scales is None:
            basis = self.tok.basis
        else:
            basis = self.tok.basis / self.image_scales[:, None]  # rows V_i / s_i: whitened coordinates
        return residual_weighted_error(target - self.pixels(out), basis, self.d, w, per_token=True)

    def net_input(self, zt: torch.Tensor) -> torch.Tensor:
        """What the network sees for a noised latent: z_t itself, or x_t = V^T z_t (Sec. 4.3, row 11)."""
        return self.to_patches(zt) if self.input_space == "image" else zt

    def clean_input(self, rows: torch.Tensor) -> torch.Tensor:
        """The probe's input: the clean latent, or its projection through the tokenizer (sigma = 0)."""
        z0, _ = self.split(rows)
        return self.net_input(z0)

    # -- the training loss --------------------------------------------------------------------------
    def loss(self, model, rows: torch.Tensor, labels: torch.Tensor, generator: torch.Generator):
        """lambda_t * || target - net(input, t, y) ||^2, averaged (eq. 2-4)."""
        z0, x0 = self.split(rows)
        n = z0.shape[0]
        y = labels if self.class_cond else None
        if self.mask_ratio > 0:
            return self._masked_loss(model, z0, x0, y, generator)
        # 1. draw the noise level and the noise in latent space; eq. (1)
        t = self.schedule.sample_t(n, generator, device=z0.device)
        eps = torch.randn(z0.shape, generator=generator, device=z0.device)
        # 2.-3. the network's prediction and its per-sample squared error against the target
        err = self.error(model, rows, t, eps, y)  # (N,)
        # 4. lambda_t weighting (Sec. 4.1, 4.3)
        return (self.schedule.loss_weight(self.loss_weight, t) * err).mean()

    def error(self, model, rows: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, y=None) -> torch.Tensor:
        """Per-sample squared error (N,) of the network against the objective's target, before lambda_t,
        for given steps t (N,), latent noise eps (N, L, d) and labels y (None: the null label)."""
        z0, x0 = self.split(rows)
        zt = self.schedule.add_noise(z0, t, eps)  # eq. (1)
        pred = model(self.net_input(zt), t.float(), y).float()  # in latent or image space
        return self._error(pred, z0, x0, eps)

    def _error(self, pred, z0, x0, eps) -> torch.Tensor:
        if self.target == "eps":
            return (pred - eps).pow(2).mean(dim=(1, 2))
        if self.target == "x0" and self.output_space == "latent":
            return (pred - z0).pow(2).mean(dim=(1, 2))
        if self.target == "x0" and self.image_scales is None:  # image output, target V^T V x_0 (row 12)
            return (pred - self.to_patches(z0)).pow(2).mean(dim=(1, 2))
        if self.target == "x0":  # the same, in whitened units (w = 1: every coordinate counts)
            return self.image_error(self.to_patches(z0), pred, 1.0).mean(dim=1)
        return self.image_error(x0, pred, self.residual_weight).mean(dim=1)  # eq. (4), row 13

    def _masked_loss(self, model, z0, x0, y, generator):
        """MAE-style: hide a random subset of patches of the clean (projected) image; predict the image
        on the hidden patches only. Same backbone, same target, a different corruption."""
        inp = self.net_input(z0)  # the clean (projected) image, as at sigma = 0
        n, length, _ = inp.shape
        k = int(round(self.mask_ratio * length))
        order = torch.rand((n, length), generator=generator, device=inp.device).argsort(dim=1)
        masked = torch.zeros((n, length), device=inp.device, dtype=torch.bool)
        masked.scatter_(1, order[:, :k], True)
        inp = inp.masked_fill(masked.unsqueeze(-1), 0.0)
        t = torch.zeros(n, device=inp.device)
        pred = model(inp, t, y).float()
        if self.target == "image":
            per_token = self.image_error(x0, pred, self.residual_weight)
        elif self.image_scales is not None:
            per_token = self.image_error(self.to_patches(z0), pred, 1.0)
        else:
            per_token = (pred - (self.to_patches(z0) if self.output_space == "image" else z0)).pow(2).mean(-1)
        return (per_token * masked).sum() / masked.sum().clamp(min=1)

    # -- for sampling ---------------------------------------------------------------------------
    def predict_z0(self, model_out: torch.Tensor, zt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network's estimate of the clean latent z_0, whatever it was trained to predict."""
        shape = (-1, 1, 1)
        if self.target == "eps":
            gamma = self.schedule.gamma(t).view(shape).clamp(min=0.02)  # gamma -> 0 at the last step
            return (zt - self.schedule.sigma(t).view(shape) * model_out) / gamma
        if self.output_space == "latent":
            return model_out
        return self.tok.encode(unpatchify(self.pixels(model_out), self.p, self.c))


def _residual_weights(D: int, d: int, w: float, device) -> torch.Tensor:
    weights = torch.full((D,), float(w), device=device)
    weights[:d] = 1.0
    return weights


def residual_weighted_error(residual: torch.Tensor, basis: torch.Tensor, d: int, w: float,
                            per_token: bool = False) -> torch.Tensor:
    """eq. (4): r = V_full (x_0 - net(x_t)); sum_i w_i r_i^2 with w_i = 1 for i <= d, w for i > d.

    residual: (N, L, D) image-space error x_0 - prediction. basis: (D, D), rows are the PCA components by
    decreasing variance: orthonormal (the paper), or each row divided by its s_i for whitened units.
    Returns the mean over D and tokens per sample (N,), or over D only per token (N, L) with
    per_token=True. With an orthonormal basis and w = 1 it is exactly the plain mean squared error (an
    orthonormal basis preserves the norm).
    """
    r = residual @ basis.T.to(residual.dtype)  # (N, L, D) coordinates in the full PCA basis
    weights = _residual_weights(basis.shape[0], d, w, residual.device)
    return (weights * r.pow(2)).mean(dim=-1 if per_token else (1, 2))
