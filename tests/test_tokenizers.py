"""Tokenizers: PCA algebra, the shared encode/decode interface, training, the GAN trick, errors, state,
exact resume after SIGTERM."""

import os
import signal
import threading

import pytest
import torch
import torch.nn as nn

from ldae_lite.conv_vae import PatchDiscriminator, adversarial_losses
from ldae_lite.patches import patchify
from ldae_lite.supervised import SmallCNN, frozen_perceptual_loss
from ldae_lite.tokenizers import KINDS, PatchPCA, load_tokenizer, make_tokenizer, save_tokenizer


def smooth_images(n=48, channels=1, size=16, seed=0):
    """Random images with spatial correlation (so the PCA spectrum decays), in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, channels, size // 4, size // 4, generator=g)
    x = nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1) * 2 - 1


def fitted_pca(d, whiten=True, x=None, patch_size=4):
    x = smooth_images() if x is None else x
    tok = make_tokenizer("patch_pca", d, image_size=x.shape[-1], channels=x.shape[1], patch_size=patch_size,
                         whiten=whiten)
    tok.fit(x, progress=False)
    return tok, x


# ---- patch PCA --------------------------------------------------------------------------------------
def test_pca_basis_is_orthonormal_and_sorted():
    tok, _ = fitted_pca(4)
    D = tok.patch_dim
    assert tok.basis.shape == (D, D)
    torch.testing.assert_close(tok.basis @ tok.basis.T, torch.eye(D), atol=1e-5, rtol=0)
    assert (tok.variances[:-1] >= tok.variances[1:] - 1e-7).all()
    assert torch.equal(tok.components, tok.basis[:4])


@pytest.mark.parametrize("whiten", [True, False])
def test_pca_round_trip_exact_at_full_dimension(whiten):
    tok, x = fitted_pca(16, whiten=whiten)  # D = 4 * 4 * 1 = 16
    torch.testing.assert_close(tok.reconstruct(x), x, atol=1e-4, rtol=0)


def test_pca_error_decreases_with_d():
    x = smooth_images()
    errors = [fitted_pca(d, x=x)[0].reconstruction_mse(x) for d in (1, 2, 4, 8, 16)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-8


def test_pca_matches_sklearn():
    sklearn_decomposition = pytest.importorskip("sklearn.decomposition")
    tok, x = fitted_pca(5)
    patches = patchify(x, 4).reshape(-1, 16).double().numpy()
    sk = sklearn_decomposition.PCA(n_components=5, svd_solver="full").fit(patches)
    rec_sk = torch.from_numpy(sk.inverse_transform(sk.transform(patches))).float()
    rec = patchify(tok.reconstruct(x), 4).reshape(-1, 16)
    torch.testing.assert_close(rec, rec_sk, atol=1e-4, rtol=0)
    overlap = (tok.components.double() @ torch.from_numpy(sk.components_).T).diagonal().abs()
    torch.testing.assert_close(overlap, torch.ones(5, dtype=torch.float64), atol=1e-4, rtol=0)  # same up to sign
    torch.testing.assert_close(tok.mean.double(), torch.from_numpy(sk.mean_), atol=1e-5, rtol=0)


def test_whitened_latents_have_unit_variance():
    tok, x = fitted_pca(6)
    z = tok.encode(x).reshape(-1, 6)  # every patch was used for the fit
    torch.testing.assert_close(z.var(dim=0, unbiased=False), torch.ones(6), atol=1e-3, rtol=0)
    torch.testing.assert_close(z.mean(dim=0), torch.zeros(6), atol=1e-4, rtol=0)


def test_unwhitened_latents_have_unit_pooled_variance_and_keep_the_spectrum():
    tok, x = fitted_pca(6, whiten=False)
    z = tok.encode(x).reshape(-1, 6)
    assert abs(z.pow(2).mean().item() - 1.0) < 1e-3
    var = z.var(dim=0)
    assert (var[:-1] > var[1:]).all()  # orthonormal V: variances still decrease


def test_pca_full_coords_projection_and_noise_map():
    tok, x = fitted_pca(4)
    full = tok.full_coords(x)  # (N, L, D)
    assert full.shape == (len(x), tok.num_tokens, tok.patch_dim)
    unwhitened = tok.encode(x) / tok.latent_scale * tok.variances[:4].sqrt()
    torch.testing.assert_close(full[..., :4], unwhitened, atol=1e-4, rtol=1e-4)
    diff = x - tok.project(x)  # an image difference: rotate it without centring; the norm is preserved
    torch.testing.assert_close(tok.full_coords(diff, center=False).pow(2).sum(), diff.pow(2).sum(), rtol=1e-4,
                               atol=1e-5)
    torch.testing.assert_close(tok.project(tok.project(x)), tok.project(x), atol=1e-5, rtol=0)
    eps = torch.randn(3, tok.num_tokens, 4)
    zero = torch.zeros_like(eps)
    torch.testing.assert_close(tok.to_image_space_noise(eps), tok.decode(eps) - tok.decode(zero), atol=1e-5,
                               rtol=0)


def test_pca_subsamples_patches_and_handles_large_patches():
    x = smooth_images(n=8, channels=3, size=32)
    tok = make_tokenizer("patch_pca", 16, image_size=32, channels=3, patch_size=16, num_patches=20)
    stats = tok.fit(x, progress=False)  # D = 768 from only 20 patches: rank-deficient but well defined
    assert stats["num_patches"] == 20
    assert torch.isfinite(tok.encode(x)).all() and tok.basis.shape == (768, 768)


def test_unfitted_pca_refuses_to_encode():
    with pytest.raises(RuntimeError, match="not fitted"):
        make_tokenizer("patch_pca", 4, image_size=16, patch_size=4).encode(smooth_images(2))


# ---- every kind: interface and training -------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_encode_decode_shapes(kind):
    tok = make_tokenizer(kind, None if kind == "pixel" else 8)
    x = smooth_images(4, size=32)
    if kind == "patch_pca":
        tok.fit(x, progress=False)
    z = tok.encode(x)
    assert z.shape == (4, 16, 64 if kind == "pixel" else 8)
    assert tok.decode(z).shape == x.shape and tok.num_tokens == 16
    assert tok.kind == kind


def test_pixel_tokenizer_is_identity_at_other_resolutions():
    x = smooth_images(2, channels=3, size=64)
    tok = make_tokenizer("pixel", image_size=64, channels=3, patch_size=16)
    assert tok.latent_dim == 768 and tok.encode(x).shape == (2, 16, 768)
    torch.testing.assert_close(tok.reconstruct(x), x)


@pytest.mark.parametrize("kind", ["patch_ae", "patch_vae", "conv_vae", "conv_vae_adv", "vqgan"])
def test_a_few_steps_reduce_the_reconstruction_error(kind):
    torch.manual_seed(0)
    x = smooth_images(32, size=32)
    opts = {"width": 8} if kind.startswith("conv") or kind == "vqgan" else {}
    tok = make_tokenizer(kind, 8, **opts)
    before = tok.reconstruction_mse(x)
    stats = tok.fit(x, steps=25, batch_size=16, lr=3e-3, perceptual=frozen_perceptual_loss(SmallCNN(1, width=8)),
                    progress=False)
    assert stats["recon_mse"] < before and tok.reconstruction_mse(x) < 0.8 * before
    std = tok.encode(x).flatten(0, 1).std(0)  # (d,): the latent scale was fitted on this very data
    torch.testing.assert_close(std, torch.ones(8), atol=1e-3, rtol=0)
    if kind in ("conv_vae_adv", "vqgan"):
        assert "mean_d_loss" in stats


def test_gan_single_backward_gives_each_network_only_its_own_gradient():
    torch.manual_seed(0)
    generator, disc = nn.Conv2d(1, 1, 3, padding=1), PatchDiscriminator(1, width=8)
    real, noise = torch.randn(4, 1, 16, 16), torch.randn(4, 1, 16, 16)

    def grads(which):
        generator.zero_grad(set_to_none=True)
        disc.zero_grad(set_to_none=True)
        g_loss, d_loss = adversarial_losses(disc, real, generator(noise))
        {"g": g_loss, "d": d_loss, "sum": g_loss + d_loss}[which].backward()
        return ([p.grad for p in generator.parameters()], [p.grad for p in disc.parameters()])

    gen_g, disc_g = grads("g")
    assert all(g is None for g in disc_g) and all(g is not None and g.abs().sum() > 0 for g in gen_g)
    gen_d, disc_d = grads("d")
    assert all(g is None for g in gen_d) and all(g is not None for g in disc_d)
    gen_s, disc_s = grads("sum")
    for a, b in zip(gen_s, gen_g):
        torch.testing.assert_close(a, b)
    for a, b in zip(disc_s, disc_d):
        torch.testing.assert_close(a, b)


# ---- bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, kwargs, match", [
    (("vae",), {}, "tokenizer kind='vae' is not allowed; choose one of .*patch_pca"),
    (("patch_pca", 65), {}, "latent_dim=65.*1..64"),
    (("patch_ae", 100), {"patch_size": 4}, "latent_dim=100.*1..16"),
    (("patch_vae", 0), {}, "latent_dim=0"),
    (("conv_vae", 10), {}, "latent_dim=10.*divisible by 4"),
    (("conv_vae", 16), {"image_size": 24, "patch_size": 6}, "patch_size=6.*power of two"),
    (("pixel", 16), {}, "latent_dim=16.*64"),
    (("patch_pca", 8), {"image_size": 30}, "image_size=30.*patch_size=8"),
])
def test_value_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_tokenizer(*args, **kwargs)


def test_fit_and_encode_errors():
    x = smooth_images(4, size=32)
    with pytest.raises(ValueError, match="perceptual=None"):
        make_tokenizer("vqgan", 8, width=8).fit(x, steps=1, batch_size=2, progress=False)
    tok = make_tokenizer("pixel")
    with pytest.raises(ValueError, match=r"\(N, 1, 32, 32\)"):
        tok.encode(smooth_images(2, size=16))
    with pytest.raises(ValueError, match=r"\(N, 16, 64\)"):
        tok.decode(torch.zeros(2, 16, 8))


# ---- state ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["patch_pca", "conv_vae", "vqgan", "pixel"])
def test_save_load_round_trip(tmp_path, kind):
    x = smooth_images(8, size=32)
    opts = {"whiten": False} if kind == "patch_pca" else ({"width": 8} if "vae" in kind or kind == "vqgan" else {})
    tok = make_tokenizer(kind, 64 if kind == "pixel" else 8, **opts)
    tok.fit(x, steps=2, batch_size=4, perceptual=frozen_perceptual_loss(SmallCNN(1, width=8)), progress=False)
    path = tmp_path / "sub" / "tok.pt"
    save_tokenizer(tok, path)
    assert os.listdir(path.parent) == ["tok.pt"]  # written atomically: no temporary file left behind
    back = load_tokenizer(path)
    assert type(back) is type(tok) and back.kind == kind and back.config == tok.config
    assert bool(back.fitted)
    torch.testing.assert_close(back.latent_scale, tok.latent_scale)
    torch.testing.assert_close(back.encode(x), tok.encode(x))
    if isinstance(tok, PatchPCA):
        for name in ("basis", "mean", "variances"):
            torch.testing.assert_close(getattr(back, name), getattr(tok, name))


# ---- crash safety and layering ----------------------------------------------------------------------
def interrupted_vqgan_fit(ckpt, signal_at=None, **fit):
    """A tiny VQGAN-style fit; the perceptual loss sends this process SIGTERM on its call ``signal_at``."""
    torch.manual_seed(0)
    cnn_loss = frozen_perceptual_loss(SmallCNN(1, width=8))
    calls = []

    def perceptual(x_rec, x):
        calls.append(1)
        if len(calls) == signal_at:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives during that step's forward pass
        return cnn_loss(x_rec, x)

    torch.manual_seed(1)
    tok = make_tokenizer("vqgan", 8, width=8)
    options = dict(steps=12, batch_size=8, lr=3e-3, perceptual=perceptual, progress=False, seed=3, ckpt_path=ckpt)
    return tok, tok.fit(smooth_images(32, size=32), **{**options, **fit})


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals: main thread")
def test_fit_stops_on_sigterm_and_resumes_exactly(tmp_path):
    ref, ref_stats = interrupted_vqgan_fit(None)
    ckpt = tmp_path / "tok.partial.pt"
    with pytest.raises(KeyboardInterrupt):
        interrupted_vqgan_fit(ckpt, signal_at=6)  # during step 6 of 12 (the adversarial terms start at step 4)
    assert torch.load(ckpt, weights_only=True)["step"] == 6  # the step in progress finished, then saved
    with pytest.raises(ValueError, match="lr: 0.003 .checkpoint. != 0.001"):
        interrupted_vqgan_fit(ckpt, lr=1e-3)
    tok, stats = interrupted_vqgan_fit(ckpt)
    for key, value in ref.state_dict().items():
        assert torch.equal(tok.state_dict()[key], value), key
    for key in ("recon_mse", "latent_scale", "final_loss", "mean_loss", "mean_d_loss"):
        assert stats[key] == ref_stats[key], key


def test_tokenizers_do_not_import_the_label_trained_network():
    """The perceptual loss is passed in: nothing in the tokenizers package imports ldae_lite.supervised."""
    import ast
    from pathlib import Path

    import ldae_lite.tokenizers

    for path in Path(ldae_lite.tokenizers.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [getattr(node, "module", None) or ""] + [alias.name for alias in node.names]
                assert not any("supervised" in name for name in names), (path.name, names)


@pytest.mark.parametrize("kind", ["patch_vae", "patch_ae", "conv_vae"])
def test_learned_latents_have_unit_variance_per_coordinate(kind):
    """Every tokenizer normalises its latents the same way as whitened patch PCA: each coordinate has std 1,
    so a trajectory step that swaps the tokenizer does not also change the normalization."""
    x = smooth_images(256, size=32)
    tok = make_tokenizer(kind, 4, **({"width": 8} if kind == "conv_vae" else {}))
    stats = tok.fit(x, steps=3, batch_size=16, progress=False)
    assert tok.latent_scale.shape == (4,)
    std = tok.encode(x).flatten(0, 1).std(0)  # (d,)
    torch.testing.assert_close(std, torch.ones(4), atol=0.15, rtol=0)
    assert stats["latent_scale"] == pytest.approx(tok.latent_scale.mean().item())
    assert tok.latent_scale.std() > 0  # really per coordinate: the raw coordinates' scales differ
