"""One frozen dataclass for every knob the paper turns, and the paper's trajectory as a list of them.

Each step of arXiv 2401.14404 Fig. 6 is a ``dataclasses.replace`` of the step before it, so reading
``TRAJECTORY`` top to bottom is reading the paper's deconstruction: what changed, and the paper's
linear-probe number after the change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, replace

from . import paper, validate
from .noise import LOSS_WEIGHTS, NOISE_LEVELS, SCHEDULES
from .objectives import SPACES, TARGETS
from .tokenizers import KINDS as TOKENIZERS

# A field's allowed values come from the module that implements them (imported above, never copied).
# Two groups of tokenizer kinds that a recipe's checks and the run cache treat apart:
CONV_TOKENIZERS = ("vqgan", "conv_vae_adv", "conv_vae")
FITTED_WITHOUT_GRADIENT = ("patch_pca", "pixel")  # an eigendecomposition, or nothing to fit
RESOLUTION_SCALES = (1, 2, 4)  # Fig. 5: images 32, 64 or 128 pixels a side, 16 tokens each time


@dataclass(frozen=True)
class Recipe:
    """What is trained: tokenizer, corruption, target and loss. Defaults are the DiT baseline (step 1)."""

    class_cond: bool = True  # DiT is class-conditional; Sec. 4.1 removes it
    tokenizer: str = "vqgan"  # conv VAE + perceptual + adversarial losses, as DiT's tokenizer
    latent_dim: int | None = 16  # d per token; conv VAE: 4 x channels (DiT patch 2). None = patch dim D
    # PCA latents scaled to unit variance before noise (docs/paper.md §8.1); results/lecture/levers.md,
    # group 'whitening', compares them with the paper's orthonormal V
    pca_whiten: bool = True
    schedule: str = "ddpm_linear_beta"
    input_scaling: bool = True  # z_t = gamma_t z_0 + sigma_t eps; False: z_t = z_0 + sigma_t eps
    target: str = "eps"  # eps (DDM) -> x0 (clean latent) -> image (original image, l-DAE)
    input_space: str = "latent"  # "image": the net sees inverse-PCA of the noised latent (Sec. 4.3)
    output_space: str = "latent"  # "image": the net predicts pixels, compared through the PCA basis
    loss_weight: str = "none"  # lambda_t: none -> gamma_t^2 -> 1 / (1 + sigma_t^2)
    noise_levels: str = "multi"  # "single": sigma fixed at sqrt(1/3) (Sec. 4.3 ablation); "single_1/3": at 1/3
    residual_weight: float = 0.1  # w_i for PCA components beyond d in the l-DAE loss (eq. 4)
    resolution_scale: int = 1  # images upsampled s times, patches s times larger (Fig. 5); tokens fixed
    mask_ratio: float = 0.0  # > 0: MAE-style masking instead of noise (a comparison, not in the paper)

    def __post_init__(self):
        self._check_types()
        if self.tokenizer in CONV_TOKENIZERS:
            if self.latent_dim is None or self.latent_dim % 4:
                raise validate.BadValue(
                    f"latent_dim={self.latent_dim}: a conv VAE token groups 2x2 latent cells, so d must be "
                    "a multiple of 4 (d = 4 x channels)"
                )
            if self.resolution_scale != 1:
                raise validate.BadValue(f"resolution_scale={self.resolution_scale} needs a patch-wise tokenizer")
        if self.tokenizer != "patch_pca":
            for field in ("input_space", "output_space"):
                if getattr(self, field) == "image":
                    raise validate.BadValue(
                        f"{field}='image' goes through inverse PCA, so it needs tokenizer='patch_pca' "
                        f"(got tokenizer={self.tokenizer!r})"
                    )
            if self.target == "image":
                raise validate.BadValue(
                    f"target='image' weights the residual in the PCA basis, so it needs tokenizer='patch_pca' "
                    f"(got tokenizer={self.tokenizer!r}); a pixel tokenizer predicts the image with target='x0'"
                )
        if self.target == "eps" and self.output_space == "image":
            raise validate.BadValue("target='eps' is latent noise; output_space='image' needs target 'x0' or 'image'")
        if self.target == "image" and self.output_space != "image":
            raise validate.BadValue("target='image' predicts pixels, so it needs output_space='image'")
        if self.schedule == "linear_sigma" and self.input_scaling:
            raise validate.BadValue("schedule='linear_sigma' reaches sigma = sqrt(2), so it needs input_scaling=False")
        if self.loss_weight == "gamma2" and not self.input_scaling:
            raise validate.BadValue("loss_weight='gamma2' is 1 when input_scaling=False; use 'inv_1_plus_sigma2'")
        if self.mask_ratio > 0 and self.input_space != "image":
            raise validate.BadValue("mask_ratio > 0 masks image patches, so it needs input_space='image'")

    def _check_types(self) -> None:
        """Each field on its own: its type and its allowed values (the tuples above). A number is stored as
        its Python type (numpy's 16 as 16, an int weight as a float), so that equal recipes hash alike."""
        for name, allowed in (("tokenizer", TOKENIZERS), ("schedule", SCHEDULES), ("target", TARGETS),
                              ("input_space", SPACES), ("output_space", SPACES), ("loss_weight", LOSS_WEIGHTS),
                              ("noise_levels", NOISE_LEVELS)):
            validate.one_of(f"Recipe.{name}", getattr(self, name), allowed)
        checked = dict(
            class_cond=validate.boolean("Recipe.class_cond", self.class_cond),
            pca_whiten=validate.boolean("Recipe.pca_whiten", self.pca_whiten),
            input_scaling=validate.boolean("Recipe.input_scaling", self.input_scaling),
            latent_dim=validate.optional_integer("Recipe.latent_dim", self.latent_dim, low=1),
            residual_weight=validate.real("Recipe.residual_weight", self.residual_weight, low=0.0, high=1.0),
            resolution_scale=validate.integer("Recipe.resolution_scale", self.resolution_scale,
                                              low=min(RESOLUTION_SCALES), high=max(RESOLUTION_SCALES)),
            mask_ratio=validate.real("Recipe.mask_ratio", self.mask_ratio, low=0.0, high=1.0, high_open=True))
        validate.one_of("Recipe.resolution_scale", checked["resolution_scale"], RESOLUTION_SCALES)
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # frozen: set once, here

    def key(self) -> str:
        """A short stable hash of every field (part of the cache key of a run)."""
        return stable_hash(dataclasses.asdict(self))

    def changes_from(self, other: "Recipe") -> dict:
        """Fields whose value differs from ``other``: {field: (other's, ours)}."""
        a, b = dataclasses.asdict(other), dataclasses.asdict(self)
        return {k: (a[k], b[k]) for k in b if a[k] != b[k]}


def stable_hash(obj, n: int = 12) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


@dataclass(frozen=True)
class Step:
    """One step of the trajectory: the recipe, the paper's number, and how to read it."""

    key: str
    label: str
    recipe: Recipe
    paper_accuracy: float | None
    legitimate: bool  # False while labels leak in (class conditioning, a label-trained perceptual loss)
    generative: bool = False  # the paper reports FID for this step (Tab. 1): we sample and report FD

    @property
    def paper_fid(self):
        return _PAPER.get(self.key).fid if self.key in _PAPER else None


_PAPER = {s.key: s for s in paper.TRAJECTORY}


def _trajectory() -> tuple[Step, ...]:
    changes = [  # (key, change to the step before); the first row is the DiT baseline itself
        ("dit_baseline", {}),
        ("no_class_cond", dict(class_cond=False)),
        ("no_perceptual", dict(tokenizer="conv_vae_adv")),
        ("no_adversarial", dict(tokenizer="conv_vae")),
        ("linear_gamma2", dict(schedule="linear_gamma2")),
        ("patch_vae", dict(tokenizer="patch_vae")),
        ("patch_ae", dict(tokenizer="patch_ae")),
        ("patch_pca", dict(tokenizer="patch_pca")),
        ("predict_x0", dict(target="x0", loss_weight="gamma2")),
        ("no_input_scaling", dict(input_scaling=False, schedule="linear_sigma", loss_weight="inv_1_plus_sigma2")),
        ("image_input", dict(input_space="image")),
        ("image_output", dict(output_space="image")),
        ("predict_image", dict(target="image")),
    ]
    steps, recipe = [], Recipe()
    for i, (key, change) in enumerate(changes):
        recipe = replace(recipe, **change)
        p = _PAPER[key]
        steps.append(Step(key, p.label, recipe, p.accuracy, p.legitimate, generative=i < 5))
    return tuple(steps)


TRAJECTORY: tuple[Step, ...] = _trajectory()
STEPS = {s.key: s for s in TRAJECTORY}
LDAE: Recipe = TRAJECTORY[-1].recipe  # the paper's final l-DAE

# Side entries (Sec. 4.3, Tab. 2, Fig. 5): replacements of the final recipe or of a trajectory step.
SINGLE_NOISE = replace(LDAE, noise_levels="single")
PIXEL_DAE = replace(LDAE, tokenizer="pixel", latent_dim=None, input_space="latent", output_space="latent",
                    target="x0")
MASKED_AE = replace(LDAE, mask_ratio=0.75)


def tokenizer_sweep(kind: str, dims=(4, 8, 16, 32)) -> dict[int, Recipe]:
    """Tab. 2 at our scale: the stage-2 recipe (after the schedule change) with tokenizer ``kind`` at each d."""
    base = STEPS["linear_gamma2"].recipe
    return {d: replace(base, tokenizer=kind, latent_dim=d) for d in dims}


def pixel_sweep(scales=(1, 2, 4)) -> dict[int, tuple[Recipe, Recipe]]:
    """Fig. 5 at our scale: at a fixed token count, a larger patch (higher resolution) per token, for the
    pixel-space DAE and for l-DAE. Returns {scale: (pixel DAE, l-DAE)}."""
    return {s: (replace(PIXEL_DAE, resolution_scale=s), replace(LDAE, resolution_scale=s)) for s in scales}


def get_step(key: str) -> Step:
    """The trajectory step named ``key`` (``TRAJECTORY``'s keys)."""
    return STEPS[validate.one_of("trajectory step", key, tuple(STEPS))]
