"""Tokenizers: images -> per-token latents z_0 = f(x_0) of shape (N, L, d), and back.

The paper's Stage 2 (arXiv 2401.14404, Sec. 4.2, Tab. 2) swaps the tokenizer of a latent DDM while the
sequence length stays fixed, and finds that what matters is the per-token latent dimension d, not the
tokenizer's sophistication. Objectives (Sec. 4.2; x is the image for the conv VAE, a D-dim patch else):

    conv VAE     ||x - g(f(x))||^2 + KL[f(x) || N]        (+ perceptual + adversarial: "vqgan")   learned.py
    patch VAE    ||x - U^T V x||^2 + KL[V x || N]          (V, U: d x D, linear)                   learned.py
    patch AE     ||x - U^T V x||^2                                                                  learned.py
    patch PCA    ||x - V^T V x||^2 with V V^T = I          (eigendecomposition, no gradient training) pca.py
    pixel        identity on patches (d = D)                                                        pca.py

All share one interface (base.py): ``encode(images) -> (N, L, d)``, ``decode(z) -> (N, C, H, W)``,
``fit(...)``; registry.py builds them by kind. Each token covers a patch_size x patch_size pixel patch
(8 for 32x32 images: L = 16 tokens).
After fitting, every tokenizer's latent coordinates have unit variance, so that noise of standard deviation
sigma means the same thing for every tokenizer and every step of the trajectory changes one thing: the
learned tokenizers multiply each coordinate by its ``latent_scale`` (1 / that coordinate's std, a (d,)
vector; Stable Diffusion uses one number, 0.18215, for all), and whitened patch PCA divides coordinate i
by sqrt(lambda_i), which is the same thing. decode divides the scale out. The paper's plain orthonormal
PCA (``whiten=False``) has one global scale instead: results/README.md lists the runs that measure it.
"""

from .base import Tokenizer, save_tokenizer
from .learned import ConvVAE, LearnedTokenizer, PatchAE, PatchVAE, gaussian_kl
from .pca import PatchPCA, PixelTokenizer
from .registry import KINDS, load_tokenizer, make_tokenizer

__all__ = ["KINDS", "ConvVAE", "LearnedTokenizer", "PatchAE", "PatchPCA", "PatchVAE", "PixelTokenizer", "Tokenizer",
           "gaussian_kl", "load_tokenizer", "make_tokenizer", "save_tokenizer"]
