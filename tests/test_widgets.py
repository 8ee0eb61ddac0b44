"""The interactive views: pure functions checked on small images, wrappers built without a display."""

import math

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ldae_lite import widgets  # noqa: E402
from ldae_lite.patches import patchify  # noqa: E402
from ldae_lite.plots import SeedMean  # noqa: E402
from ldae_lite.recipes import STEPS, TRAJECTORY  # noqa: E402
from ldae_lite.tokenizers import PatchPCA, make_tokenizer  # noqa: E402
from ldae_lite.widgets._common import _interactive  # noqa: E402
from ldae_lite.widgets.pca_sources import _image_pca  # noqa: E402


@pytest.fixture(scope="module")
def image():
    """A smooth RGB image (3, 32, 48) in [-1, 1] with some texture, so its patches have a real spectrum."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 3, 32), torch.linspace(0, 4, 48), indexing="ij")
    base = torch.stack([torch.sin(yy + xx), torch.cos(2 * xx), torch.sin(3 * yy) * torch.cos(xx)])
    return (0.7 * base + 0.1 * torch.randn(3, 32, 48, generator=g)).clamp(-1, 1)


@pytest.fixture(scope="module")
def pca(image):
    return _image_pca(image, 8)  # fitted on random patches of the image itself, D = 192


def test_shapes_and_layout(image, pca):
    r = widgets.pca_noise(image, 0.5, d=8, patch_size=8, pca=pca)
    for key in ("clean", "pixel_noisy", "latent_noisy", "projected", "pixel_noise", "latent_noise"):
        assert r[key].shape == (3, 32, 48) and r[key].dtype == np.float32
    assert r["components"].shape == (8, 192) and r["D"] == 192
    hwc = widgets.pca_noise(image.permute(1, 2, 0).numpy(), 0.5, d=8, patch_size=8, pca=pca)
    assert hwc["latent_noisy"].shape == (32, 48, 3)
    np.testing.assert_allclose(hwc["latent_noisy"], r["latent_noisy"].transpose(1, 2, 0), atol=1e-6)


def test_sigma_zero_is_clean_and_projection(image, pca):
    r = widgets.pca_noise(image, 0.0, d=8, patch_size=8, pca=pca)
    np.testing.assert_array_equal(r["pixel_noisy"], r["clean"])
    np.testing.assert_allclose(r["latent_noisy"], r["projected"], atol=1e-6)
    assert not np.allclose(r["projected"], r["clean"], atol=1e-3)  # d < D loses the residual


def test_projection_matches_package_tokenizer():
    """The one-patch view gives what a PatchPCA tokenizer of the image's own size gives."""
    x = torch.rand(20, 1, 16, 16) * 2 - 1
    tok = PatchPCA(4, 16, 1, 8, whiten=True)
    tok.fit(x, progress=False)
    r = widgets.pca_noise(x[3], 0.0, d=4, patch_size=8, pca=tok)
    np.testing.assert_allclose(r["projected"], tok.project(x[3:4])[0].numpy(), atol=1e-5)


def test_full_dimension_reconstructs(image, pca):
    r = widgets.pca_noise(image, 0.0, d=192, patch_size=8, pca=pca)
    np.testing.assert_allclose(r["projected"], r["clean"], atol=1e-4)


@pytest.mark.parametrize("whiten", [True, False])
def test_latent_noise_lies_in_top_d_span(image, pca, whiten):
    r = widgets.pca_noise(image, 1.0, d=8, patch_size=8, whiten=whiten, pca=pca)
    noise = patchify(torch.from_numpy(r["latent_noise"])[None], 8)[0]  # (L, D)
    V = torch.from_numpy(r["components"])  # (8, D)
    residual = noise - (noise @ V.T) @ V  # the part orthogonal to the top-d components
    assert noise.norm() > 1.0 and residual.norm() / noise.norm() < 1e-5


def test_pixel_noise_std_and_seed(image, pca):
    r = widgets.pca_noise(image, 0.3, d=8, patch_size=8, pca=pca, seed=1)
    assert abs(r["pixel_noise"].std() - 0.3) < 0.02 and abs(r["pixel_noise_rms"] - 0.3) < 0.02
    again = widgets.pca_noise(image, 0.6, d=8, patch_size=8, pca=pca, seed=1)
    np.testing.assert_allclose(again["latent_noise"], 2 * r["latent_noise"], atol=1e-5)  # same eps, sigma x 2


def test_latent_noise_energy_matches_spectrum(image, pca):
    """Whitened or globally scaled, the latent noise has variance sigma^2 sum_{i<=d} lambda_i per patch."""
    d, sigma = 8, 1.0
    expected = math.sqrt(sigma**2 * pca.variances[:d].sum().item() / pca.patch_dim)
    for whiten in (True, False):
        rms = np.mean([widgets.pca_noise(image, sigma, d, 8, whiten, seed=s, pca=pca)["latent_noise_rms"]
                       for s in range(5)])
        assert abs(rms - expected) / expected < 0.15


def test_view_matches_a_direct_fit():
    x = torch.rand(200, 1, 16, 16) * 2 - 1
    full = PatchPCA(64, 16, 1, 8, whiten=False)
    full.fit(x, progress=False)
    direct = PatchPCA(6, 16, 1, 8, whiten=False)
    direct.fit(x, progress=False)
    view = widgets.pca_view(full, 6, whiten=False)
    assert view.latent_scale.item() == pytest.approx(direct.latent_scale.item(), rel=1e-5)
    z_direct = direct.encode(x[:5])[:, 0]  # (5, d): the top-left patch of each image
    z_view = view.encode(x[:5, :, :8, :8])[:, 0]
    torch.testing.assert_close(z_view, z_direct, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kwargs, word", [(dict(sigma=-0.1), "sigma=-0.1"), (dict(d=193), "d=193"),
                                          (dict(d=0), "d=0"), (dict(patch_size=5), "patch_size=5")])
def test_bad_arguments_name_the_value(image, pca, kwargs, word):
    args = dict(sigma=0.5, d=8, patch_size=8, pca=pca) | kwargs
    with pytest.raises(ValueError, match=word):
        widgets.pca_noise(image, **args)


def test_bad_image_and_source():
    with pytest.raises(ValueError, match="image must be"):
        widgets.pca_noise(np.zeros((5, 8, 8)), 0.1, d=2, patch_size=4)
    with pytest.raises(ValueError, match="source='nope'"):
        widgets.fitted_pca("nope", 8)


def test_random_patches_are_real_crops(image):
    p = widgets.random_patches([image], 8, 50, seed=0)
    assert p.shape == (50, 3, 8, 8)
    crops = image.unfold(1, 8, 1).unfold(2, 8, 1)  # (3, 25, 41, 8, 8): every overlapping crop
    flat = crops.permute(1, 2, 0, 3, 4).reshape(-1, 3 * 64)
    assert all((flat == q.reshape(1, -1)).all(1).any() for q in p[:10])


def test_plot_pca_noise_and_wrapper(image, pca):
    fig = widgets.plot_pca_noise(image, math.sqrt(1 / 3), d=8, patch_size=8, pca=pca, show_noise=True)
    assert isinstance(fig, Figure) and len(fig.axes) == 7
    w = widgets.explore_pca_noise({"a": image}, source=None, patch_sizes=(4, 8), d=8, patch_size=8, display=False)
    assert isinstance(w.result, Figure) and bytes(w.children[-1].value).startswith(b"\x89PNG")  # the figure, as a PNG
    slider = w.controls["sigma"]
    assert slider.max == pytest.approx(math.sqrt(2), abs=1e-3) and slider.value == pytest.approx(0.577, abs=1e-3)
    first = w.result
    w.controls["d"].value = 256  # d > D = 192: clipped, the view still renders
    assert isinstance(w.result, Figure) and w.result is not first and "clipped" in w.result.get_suptitle()


def test_an_explorer_raises_its_first_error_and_shows_later_ones():
    import ipywidgets as W

    def view(x):
        if x > 1:
            raise ValueError(f"x={x} is too large")
        fig = Figure()
        fig.add_subplot().plot([0, x])
        return fig

    with pytest.raises(ValueError, match="x=5"):
        _interactive(view, False, x=W.IntSlider(value=5, max=10))
    w = _interactive(view, False, x=W.IntSlider(value=0, max=10))
    status, before = w.children[1], w.result
    w.controls["x"].value = 7  # a slider change: no cell to raise into, so the status line says it
    assert "ValueError" in status.value and "x=7 is too large" in status.value and w.result is before
    w.controls["x"].value = 1
    assert status.value == "" and w.result is not before


def test_schedules():
    c = widgets.schedule_curves()
    assert c["gamma2"]["ddpm_linear_beta"].shape == (1000,)
    assert c["share"]["ddpm_linear_beta"] == pytest.approx(0.74, abs=0.01)
    assert c["share"]["linear_gamma2"] == pytest.approx(0.5, abs=0.01)
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    r = widgets.schedule_noising(x, 0)
    assert r["linear_gamma2"].shape == (3, 1, 8, 8) and r["gamma2"]["linear_gamma2"] == pytest.approx(0.999)
    with pytest.raises(ValueError, match="t=1000"):
        widgets.schedule_noising(x, 1000)
    assert isinstance(widgets.plot_schedules(t=100), Figure)
    assert isinstance(widgets.plot_schedule_noising(x, 500), Figure)
    assert isinstance(widgets.explore_schedule(x, display=False).result, Figure)


def test_basis_viewer():
    x = torch.rand(64, 1, 16, 16) * 2 - 1
    pca = PatchPCA(4, 16, 1, 8)
    pca.fit(x, progress=False)
    ae = make_tokenizer("patch_ae", 4, image_size=16, patch_size=8)
    b = widgets.basis_images(pca, k=5, start=2)
    assert b.shape == (5, 1, 8, 8)
    np.testing.assert_allclose(b[0].reshape(-1), pca.basis[2].numpy(), atol=1e-6)
    assert widgets.basis_images(ae, k=10).shape == (4, 1, 8, 8)  # an AE has only d components
    assert widgets.basis_images(ae, k=3, which="encoder").shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match="ConvVAE"):
        widgets.basis_images(make_tokenizer("conv_vae", 16))
    assert isinstance(widgets.plot_basis({"PCA": pca, "AE": ae}, k=8), Figure)
    assert isinstance(widgets.explore_basis({"PCA": pca}, display=False).result, Figure)
    assert isinstance(widgets.plot_reconstructions(x[:4], {"PCA": pca}), Figure)


def _report():
    """Five steps: three seeds each, except the first (one seed)."""
    steps = [dict(key=s.key, label=s.label, accuracies=[80.0 + i] if i == 0 else [79.5 + i, 80.0 + i, 80.5 + i])
             for i, s in enumerate(TRAJECTORY[:5])]
    return dict(meta=dict(dataset="digits", seeds=[0, 1, 2]), raw_pixels={}, steps=steps)


def test_trajectory_rows_from_report_and_results():
    rows = widgets.trajectory_rows(_report())
    assert rows["dit_baseline"] == SeedMean(80.0, None, 1) and rows["no_class_cond"] == SeedMean(81.0, 0.5, 3)
    import dataclasses
    results = [dict(recipe=dataclasses.asdict(STEPS["patch_pca"].recipe), probe_accuracy=a) for a in (84.0, 86.0)]
    rows = widgets.trajectory_rows(results)
    assert rows["patch_pca"] == SeedMean(85.0, pytest.approx(math.sqrt(2)), 2)
    with pytest.raises(ValueError, match="no entry"):
        widgets.trajectory_rows([dict(recipe={"x": 1}, probe_accuracy=1.0)])


def test_trajectory_view_and_wrapper():
    fig = widgets.trajectory_view(_report(), keys=["dit_baseline", "linear_gamma2"])
    assert isinstance(fig, Figure)
    fig = widgets.trajectory_view(_report(), sample_images=lambda k: torch.zeros(4, 1, 8, 8) if k != "dit_baseline"
                                  else None)
    assert isinstance(fig, Figure)
    with pytest.raises(ValueError, match="nope"):
        widgets.trajectory_view(_report(), keys=["nope"])
    w = widgets.explore_trajectory(_report(), display=False)
    assert isinstance(w.result, Figure)
    first = w.result
    w.controls["keys"].value = ("dit_baseline",)
    assert isinstance(w.result, Figure) and w.result is not first


def test_unscaled_orthonormal_noise_is_weak(image, pca):
    """The paper's plain orthonormal V: noise rms sigma * sqrt(d / D) per pixel (docs/paper.md §6, §8.1)."""
    rms = np.mean([widgets.pca_noise(image, 1.0, 8, 8, "none", seed=s, pca=pca)["latent_noise_rms"] for s in range(5)])
    assert abs(rms - math.sqrt(8 / 192)) / math.sqrt(8 / 192) < 0.15
    with pytest.raises(ValueError, match="whiten='yes'"):
        widgets.pca_noise(image, 1.0, 8, 8, "yes", pca=pca)


@pytest.mark.parametrize("whiten", widgets.WHITEN)
@pytest.mark.parametrize("shape", [(3, 32, 48), (1, 32, 32)])
def test_no_two_titles_overlap(whiten, shape):
    """Seen in a browser: with whiten="none" the latent panel's title ran into its neighbour's. No title
    of the figure (the panels' and the figure's own) may touch another, for every latent scaling."""
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    fig = widgets.plot_pca_noise(x, 1.0, d=8, patch_size=8, whiten=whiten, show_noise=True)
    fig.canvas.draw()
    titles = [t for t in [fig._suptitle, *(ax.title for ax in fig.axes)] if t is not None and t.get_text()]
    boxes = [t.get_window_extent() for t in titles]
    assert len(boxes) == 7  # the figure's, four panels', two noise images'
    touching = [(titles[i].get_text(), titles[j].get_text()) for i in range(len(boxes))
                for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]
    assert not touching


def test_the_package_keeps_the_public_names():
    for name in widgets.__all__:
        assert getattr(widgets, name) is not None
    assert {"pca_noise", "plot_pca_noise", "explore_pca_noise", "fitted_pca", "photo_images", "plot_schedules",
            "plot_schedule_noising", "explore_schedule", "plot_basis", "explore_basis", "plot_reconstructions",
            "trajectory_view", "explore_trajectory", "WHITEN", "WHITEN_LABELS"} <= set(widgets.__all__)
