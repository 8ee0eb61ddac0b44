"""The paper's own numbers, as data, so every table and plot can show ours beside theirs.

Chen, Liu, Xie, He, "Deconstructing Denoising Diffusion Models for Self-Supervised Learning",
arXiv 2401.14404 (v1). All accuracies are ImageNet-1k linear-probe top-1 in % (DiT-L / ViT-1/2L encoder,
400 epochs, 256x256) unless a name says otherwise. Where the extracted text is ambiguous the comment
says so; docs/paper.md is the full digest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PaperStep:
    """One bar of the paper's Fig. 6: a step of the deconstruction trajectory."""

    key: str  # our name for the step (the Recipe presets use the same keys)
    label: str  # as the paper phrases the change
    accuracy: float  # linear-probe top-1 %
    fid: float | None  # FID-50K where the paper reports it (Tab. 1 only)
    legitimate: bool  # False where labels leak in (class conditioning; a perceptual loss from a supervised VGG)


# Tab. 1 (rows 1-5), Tab. 2 best entries (6-8), Tab. 3 (9-13); the 13 bars of Fig. 6, in order.
# Row 2: the prose says 62.1 / FID 34.2, but Tab. 1, Fig. 6 and the next paragraph all say 62.5 / 30.9.
TRAJECTORY: tuple[PaperStep, ...] = (
    PaperStep("dit_baseline", "DiT baseline (class-conditional, VQGAN tokenizer)", 57.5, 11.6, False),
    PaperStep("no_class_cond", "remove class conditioning", 62.5, 30.9, False),
    PaperStep("no_perceptual", "remove VQGAN perceptual loss", 58.4, 54.3, True),
    PaperStep("no_adversarial", "remove VQGAN adversarial loss (conv VAE)", 59.0, 75.6, True),
    PaperStep("linear_gamma2", "replace noise schedule (linear in gamma^2)", 63.4, 93.2, True),
    PaperStep("patch_vae", "conv VAE -> patch-wise VAE", 64.9, None, True),
    PaperStep("patch_ae", "patch-wise VAE -> patch-wise AE", 64.7, None, True),
    PaperStep("patch_pca", "patch-wise AE -> patch-wise PCA", 65.1, None, True),
    PaperStep("predict_x0", "predict clean data (not noise)", 62.4, None, True),
    PaperStep("no_input_scaling", "remove input scaling", 63.6, None, True),
    PaperStep("image_input", "operate on image input (inverse PCA)", 63.6, None, True),
    PaperStep("image_output", "operate on image output (inverse PCA)", 63.9, None, True),
    PaperStep("predict_image", "predict original image (l-DAE)", 64.5, None, True),
)
STEPS: dict[str, PaperStep] = {s.key: s for s in TRAJECTORY}


def step(key: str) -> PaperStep:
    """The paper's step by key; ValueError naming the known keys otherwise."""
    if key not in STEPS:
        raise ValueError(f"unknown trajectory step {key!r}; choose one of {tuple(STEPS)}")
    return STEPS[key]


# Tab. 2: accuracy by tokenizer and latent dimension d per token (after stage 1, i.e. conv VAE at d = 16
# is the same run as TRAJECTORY's linear_gamma2). The patch VAE / AE rows have only 4 numbers in the
# extracted text; they are placed at d = 8..64 (alignment not independently verified).
TOKENIZER_TABLE: dict[str, dict[int, float]] = {
    "conv_vae": {8: 54.5, 16: 63.4, 32: 62.8, 64: 57.0, 128: 48.1},
    "patch_vae": {8: 58.3, 16: 64.9, 32: 64.8, 64: 56.8},
    "patch_ae": {8: 59.9, 16: 64.7, 32: 64.6, 64: 59.9},
    "patch_pca": {8: 56.0, 16: 63.4, 32: 65.1, 64: 60.0, 128: 53.9},
}

# Fig. 5: the pixel ("naive") tokenizer, 256 tokens from images resized to s x s with patch s/16, so
# d = 3 (s/16)^2. Only two values are certain: d = 48 is the stated optimum (58.5, the largest label)
# and d = 768 gives 23.6. The labels 53.0 / 44.7 / 43.7 could not be assigned to d = 12 and 192.
PIXEL_TOKENIZER: dict[int, float] = {48: 58.5, 768: 23.6}
PIXEL_TOKENIZER_SIZES: dict[int, tuple[int, int]] = {12: (32, 2), 48: (64, 4), 192: (128, 8), 768: (256, 16)}

# §4 (linear-probe protocol): the probe runs the encoder at a fixed t (of 1000), on clean or noised input.
FIXED_T: dict[str, dict[int, float]] = {
    "clean": {0: 64.1, 10: 64.5, 20: 64.1, 40: 63.3, 80: 62.2},
    "noisy": {0: 64.2, 10: 65.0, 20: 65.0, 40: 65.0, 80: 64.5},
}

# §4: how many of the 24 blocks count as the encoder (the rest is the decoder), same pre-trained model.
ENCODER_DEPTH: dict[int, float] = {9: 58.5, 10: 62.0, 11: 64.1, 12: 64.5, 13: 63.6, 14: 61.9, 15: 59.7}

# §4.3: one fixed noise level instead of sigma ~ U[0, sqrt 2]. The text's "( 1/3)" most likely lost a
# radical in extraction: sigma = sqrt(1/3) ~ 0.577 (docs/paper.md §3.7).
SINGLE_NOISE: dict[str, float] = {"multi": 64.5, "single": 61.5}
SINGLE_NOISE_SIGMA: float = math.sqrt(1.0 / 3.0)

# §5: augmentation of the final l-DAE (ViT-1/2L, 400 epochs).
AUGMENTATION: dict[str, float] = {"center_crop": 64.5, "random_resized_crop": 65.0}

# §5: training length (epochs, random-resized crop) and encoder size (decoder the same size).
TRAINING_LENGTH: dict[int, float] = {400: 65.0, 800: 67.5, 1600: 69.6}
MODEL_SIZE: dict[str, float] = {"ViT-B": 60.3, "ViT-1/2L": 65.0, "ViT-L": 70.9}

# Tab. 4 (linear probe, 1600 epochs, random crop, l-DAE at its best fixed t) and App. B (fine-tuning).
FINAL_LINEAR: dict[str, dict[str, float]] = {
    "MoCo v3": {"ViT-B": 76.7, "ViT-L": 77.6},
    "MAE": {"ViT-B": 68.0, "ViT-L": 75.8},
    "l-DAE": {"ViT-B": 66.6, "ViT-L": 75.0},
}
FINAL_FINETUNE: dict[str, dict[str, float]] = {
    "MoCo v3": {"ViT-B": 83.2, "ViT-L": 84.1},
    "MAE": {"ViT-B": 83.6, "ViT-L": 85.9},
    "l-DAE": {"ViT-B": 83.7, "ViT-L": 84.7},
}
