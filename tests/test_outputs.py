"""outputs: denoised examples (Fig. 8), samples per class, reconstructions, the CNN's measures on image sets."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from _tiny import TINY  # noqa: E402

from ldae_lite import experiment, figures, outputs, supervised  # noqa: E402
from ldae_lite.models import DiT  # noqa: E402
from ldae_lite.noise import NoiseSchedule  # noqa: E402
from ldae_lite.objectives import Objective  # noqa: E402
from ldae_lite.recipes import MASKED_AE, STEPS  # noqa: E402
from ldae_lite.tokenizers import make_tokenizer  # noqa: E402


@pytest.fixture(autouse=True)
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("LDAE_RUNS", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("key", ["patch_pca", "predict_x0", "image_input", "predict_image"])
def test_denoise_examples_shapes_and_sigma_zero(key):
    recipe = STEPS[key].recipe
    tok = experiment.get_tokenizer(recipe, TINY, "digits", 0, "cpu", progress=False)
    obj, model = experiment.build(recipe, tok, TINY)
    images = experiment.load_split("digits", "test", TINY)[0][:3]
    ex = outputs.denoise_examples(tok, obj, model, images, sigmas=(0.0, 0.5), seed=0)
    assert ex["clean"].shape == (3, 1, 32, 32) and ex["projected"].shape == (3, 1, 32, 32)
    assert ex["noisy"].shape == ex["denoised"].shape == (2, 3, 1, 32, 32)
    assert ex["ts"][0] == 0 and ex["sigmas"][1] == pytest.approx(0.5, abs=0.01)
    if obj.schedule.sigma(torch.tensor([0])).item() == 0:  # sigma_0 = 0: the noisy input is the clean projection
        assert torch.allclose(ex["noisy"][0], ex["projected"], atol=1e-5)
    assert not torch.allclose(ex["noisy"][1], ex["projected"], atol=1e-3)
    again = outputs.denoise_examples(tok, obj, model, images, sigmas=(0.0, 0.5), seed=0)
    assert torch.equal(again["noisy"], ex["noisy"])  # seeded
    fig = figures.plot_denoising(ex, max_images=2)
    assert len(fig.axes) == 2 * 5


def test_denoise_examples_rejects_masking():
    tok = experiment.get_tokenizer(MASKED_AE, TINY, "digits", 0, "cpu", progress=False)
    obj, model = experiment.build(MASKED_AE, tok, TINY)
    with pytest.raises(ValueError, match="mask"):
        outputs.denoise_examples(tok, obj, model, torch.zeros(1, 1, 32, 32), sigmas=(0.5,))


def _pixel_objective(class_cond):
    tok = make_tokenizer("pixel", None, image_size=16, patch_size=8)
    return Objective(tok, NoiseSchedule("ddpm_linear_beta", True), target="eps", class_cond=class_cond)


def test_samples_per_class_shapes_and_labels():
    obj = _pixel_objective(True)
    model = DiT(obj.in_dim, obj.tok.num_tokens, width=16, depth=2, heads=2, num_classes=3)
    images, labels = outputs.samples_per_class(model, obj, per_class=2, num_classes=3, steps=3)
    assert images.shape == (6, 1, 16, 16) and labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert images.min() >= -1 and images.max() <= 1
    with pytest.raises(ValueError):
        outputs.samples_per_class(model, obj, per_class=0)


def test_cnn_helpers():
    torch.manual_seed(0)
    cnn = supervised.SmallCNN(1, 10, width=8).eval()
    images = torch.rand(40, 1, 32, 32) * 2 - 1
    pred = outputs.predicted_classes(cnn, images, batch_size=7)
    assert pred.shape == (40,) and pred.dtype == torch.long and pred.max() < 10
    assert outputs.frechet_between(cnn, images[:20], images[20:]) > 0
    assert outputs.frechet_between(cnn, images, images) == pytest.approx(0.0, abs=1e-3)
    assert outputs.perceptual_distance(cnn, images, images) == pytest.approx(0.0, abs=1e-6)
    assert outputs.perceptual_distance(cnn, images, -images, batch_size=16) > 0


def test_reconstructions_of_an_identity_tokenizer_are_exact():
    tok = make_tokenizer("pixel", None)
    images = torch.rand(5, 1, 32, 32) * 2 - 1
    out = outputs.reconstructions({"pixel": tok}, images, batch_size=2)
    rec, mse = out["pixel"]
    assert torch.allclose(rec, images) and mse == pytest.approx(0.0, abs=1e-12)
