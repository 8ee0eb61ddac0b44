import dataclasses

import pytest
import torch

from ldae_lite.experiment import build
from ldae_lite.noise import NoiseSchedule
from ldae_lite.objectives import Objective, residual_weighted_error
from ldae_lite.recipes import LDAE, MASKED_AE, TRAJECTORY
from ldae_lite.sampling import ddim_sample
from ldae_lite.tokenizers import make_tokenizer

TINY = dataclasses.make_dataclass("TinyBudget", [("width", int, 32), ("depth", int, 2), ("heads", int, 2),
                                                 ("mlp_ratio", float, 2.0)])()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    return torch.rand((64, 1, 32, 32), generator=g) * 2 - 1


@pytest.fixture(scope="module")
def pca(images):
    tok = make_tokenizer("patch_pca", 8, image_size=32, channels=1, patch_size=8)
    tok.fit(images, steps=0, batch_size=64, device="cpu", progress=False)
    return tok


def _orthonormal(D, seed=0):
    q, _ = torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(seed)))
    return q.T


def test_residual_weight_one_is_plain_mse():
    r = torch.randn(3, 16, 64)
    assert torch.allclose(residual_weighted_error(r, _orthonormal(64), d=8, w=1.0), r.pow(2).mean(dim=(1, 2)),
                          atol=1e-5)


def test_residual_weight_zero_keeps_only_the_top_d_components():
    basis, r = _orthonormal(64, 1), torch.randn(2, 16, 64)
    coords = r @ basis.T
    expected = coords[..., :8].pow(2).sum(-1).mean(-1) / 64
    assert torch.allclose(residual_weighted_error(r, basis, d=8, w=0.0), expected, atol=1e-5)


@pytest.mark.parametrize("step", [s for s in TRAJECTORY if s.recipe.tokenizer == "patch_pca"],
                         ids=lambda s: s.key)
def test_every_pca_step_trains(step, images, pca):
    obj, model = build(step.recipe, pca, TINY)
    rows = obj.prepare(images)
    assert rows.shape == (64, 16, 8 + (64 if obj.needs_image else 0))
    g = torch.Generator().manual_seed(0)
    loss = obj.loss(model, rows[:8], torch.zeros(8, dtype=torch.long), g)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    expected_in = 64 if step.recipe.input_space == "image" else 8
    assert obj.in_dim == expected_in and obj.clean_input(rows[:2]).shape == (2, 16, expected_in)


def test_image_input_at_zero_noise_is_the_pca_projection(images, pca):
    obj, _ = build(LDAE, pca, TINY)
    rows = obj.prepare(images[:4])
    from ldae_lite.patches import patchify
    assert torch.allclose(obj.clean_input(rows), patchify(pca.project(images[:4]), 8), atol=1e-4)


def test_loss_is_deterministic_given_the_generator(images, pca):
    obj, model = build(LDAE, pca, TINY)
    rows, y = obj.prepare(images[:8]), torch.zeros(8, dtype=torch.long)
    a = obj.loss(model, rows, y, torch.Generator().manual_seed(3))
    b = obj.loss(model, rows, y, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_masked_corruption_trains(images, pca):
    obj, model = build(MASKED_AE, pca, TINY)
    loss = obj.loss(model, obj.prepare(images[:8]), torch.zeros(8, dtype=torch.long), torch.Generator())
    assert torch.isfinite(loss)


def test_predict_z0_inverts_eps_prediction(pca):
    obj = Objective(pca, NoiseSchedule("ddpm_linear_beta"), target="eps")
    z0, eps, t = torch.randn(4, 16, 8), torch.randn(4, 16, 8), torch.tensor([1, 100, 400, 700])
    zt = obj.schedule.add_noise(z0, t, eps)
    assert torch.allclose(obj.predict_z0(eps, zt, t), z0, atol=1e-3)


def test_ddim_sampling_shapes(images):
    tok = make_tokenizer("conv_vae", 16, image_size=32, channels=1, patch_size=8)
    obj, model = build(TRAJECTORY[0].recipe, tok, TINY)
    out = ddim_sample(model, obj, 6, labels=torch.arange(6), steps=4)
    assert out.shape == (6, 1, 32, 32) and out.abs().max() <= 1


# -- image output on whitened PCA latents (steps 12-13) -----------------------------------------------
def _whitened_coords(pca, images):
    from ldae_lite.patches import patchify
    return (patchify(images, 8) - pca.mean) @ pca.basis.T / pca.coordinate_scales()


def test_whitened_image_output_reads_the_output_in_whitened_pca_units(images, pca):
    from ldae_lite.patches import patchify
    obj, model = build(LDAE, pca, TINY)
    assert pca.whiten and obj.image_scales is not None
    u = _whitened_coords(pca, images[:4])  # (4, 16, 64)
    assert torch.allclose(obj.pixels(u), patchify(images[:4], 8), atol=1e-4)  # the inverse of the coordinates
    assert torch.allclose(obj.image_scales[:8].pow(2), pca.variances[:8], rtol=1e-4)  # the latent's own units
    assert torch.equal(obj.image_scales[8:], obj.image_scales[7].expand(56))  # the residual in units of s_d
    zero_head = model(obj.clean_input(obj.prepare(images[:2])), 10.0)  # DiT's zero-initialised head
    assert torch.allclose(obj.pixels(zero_head), pca.mean.expand(2, 16, 64))  # starts at the mean patch
    assert torch.allclose(obj.predict_z0(u, None, None), pca.encode(images[:4]), atol=1e-4)


def test_whitened_step_12_loss_is_step_11_latent_loss_in_the_same_units(images, pca):
    step11, step12 = (next(s.recipe for s in TRAJECTORY if s.key == k) for k in ("image_input", "image_output"))
    obj11, _ = build(step11, pca, TINY)
    obj12, _ = build(step12, pca, TINY)
    z0 = pca.encode(images[:4])
    pred = z0 + 0.3 * torch.randn(z0.shape, generator=torch.Generator().manual_seed(0))
    u = torch.cat([pred, torch.zeros(4, 16, 56)], -1)  # the same latent estimate, nothing off the subspace
    err11 = obj11._error(pred, z0, None, None)
    err12 = obj12._error(u, z0, None, None)
    assert torch.allclose(err12, err11 * 8 / 64, rtol=1e-4)  # the same sum, a mean over D instead of d


def test_orthonormal_image_output_is_pixels_with_plain_mse(images):
    tok = make_tokenizer("patch_pca", 8, image_size=32, channels=1, patch_size=8, whiten=False)
    tok.fit(images, steps=0, batch_size=64, device="cpu", progress=False)
    recipe = dataclasses.replace(LDAE, pca_whiten=False)
    obj, _ = build(recipe, tok, TINY)
    out = torch.randn(2, 16, 64)
    assert obj.image_scales is None and torch.equal(obj.pixels(out), out)
    x0 = torch.randn(2, 16, 64)
    assert torch.allclose(obj.image_error(x0, out, 1.0), (x0 - out).pow(2).mean(-1), atol=1e-5)


def test_error_is_the_loss_before_its_weight(images, pca):
    obj, model = build(dataclasses.replace(LDAE, class_cond=True), pca, TINY)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():  # away from the zero init, so that the output depends on the label
            p.normal_(0, 0.05)
    model.eval()  # no label dropout: the two calls see the same labels
    rows, y = obj.prepare(images[:8]), torch.arange(8)
    g = torch.Generator().manual_seed(3)
    t = obj.schedule.sample_t(8, g)  # loss() draws t, then eps, from its generator
    eps = torch.randn(rows[..., :obj.d].shape, generator=g)
    err = obj.error(model, rows, t, eps, y)
    assert err.shape == (8,)
    expected = (obj.schedule.loss_weight(obj.loss_weight, t) * err).mean()
    assert torch.allclose(obj.loss(model, rows, y, torch.Generator().manual_seed(3)), expected)
    assert not torch.allclose(err, obj.error(model, rows, t, eps, None))  # the null label answers otherwise
