"""Helpers behind notebooks 01-03: module comparison, samples per class, reconstructions, figures, tables."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from ldae_lite import showcase, supervised  # noqa: E402
from ldae_lite.models import DiT, TimestepEmbedder  # noqa: E402
from ldae_lite.noise import NoiseSchedule  # noqa: E402
from ldae_lite.objectives import Objective  # noqa: E402
from ldae_lite.tokenizers import make_tokenizer  # noqa: E402


def test_copy_and_compare_copies_weights_and_detects_drift():
    ref = TimestepEmbedder(16, mlp_hidden=4)
    twin = TimestepEmbedder(16, mlp_hidden=4)
    t = torch.tensor([0.0, 10.0, 999.0])
    assert showcase.copy_and_compare(twin, ref, t) == 0.0

    class Drifted(TimestepEmbedder):
        def forward(self, t):
            return super().forward(t) + 1e-3

    with pytest.raises(ValueError, match="differ"):
        showcase.copy_and_compare(Drifted(16, mlp_hidden=4), ref, t)
    with pytest.raises(RuntimeError):  # parameter names must match
        showcase.copy_and_compare(nn.Linear(3, 3), ref, t)


def _pixel_objective(class_cond):
    tok = make_tokenizer("pixel", None, image_size=16, patch_size=8)
    return Objective(tok, NoiseSchedule("ddpm_linear_beta", True), target="eps", class_cond=class_cond)


def test_samples_per_class_shapes_and_labels():
    obj = _pixel_objective(True)
    model = DiT(obj.in_dim, obj.tok.num_tokens, width=16, depth=2, heads=2, num_classes=3)
    images, labels = showcase.samples_per_class(model, obj, per_class=2, num_classes=3, steps=3)
    assert images.shape == (6, 1, 16, 16) and labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert images.min() >= -1 and images.max() <= 1
    with pytest.raises(ValueError):
        showcase.samples_per_class(model, obj, per_class=0)


def test_cnn_helpers():
    torch.manual_seed(0)
    cnn = supervised.SmallCNN(1, 10, width=8).eval()
    images = torch.rand(40, 1, 32, 32) * 2 - 1
    pred = showcase.predicted_classes(cnn, images, batch_size=7)
    assert pred.shape == (40,) and pred.dtype == torch.long and pred.max() < 10
    assert showcase.frechet_between(cnn, images[:20], images[20:]) > 0
    assert showcase.frechet_between(cnn, images, images) == pytest.approx(0.0, abs=1e-3)
    assert showcase.perceptual_distance(cnn, images, images) == pytest.approx(0.0, abs=1e-6)
    assert showcase.perceptual_distance(cnn, images, -images, batch_size=16) > 0


def test_reconstructions_of_an_identity_tokenizer_are_exact():
    tok = make_tokenizer("pixel", None)
    images = torch.rand(5, 1, 32, 32) * 2 - 1
    out = showcase.reconstructions({"pixel": tok}, images, batch_size=2)
    rec, mse = out["pixel"]
    assert torch.allclose(rec, images) and mse == pytest.approx(0.0, abs=1e-12)


def test_image_rows_and_losses_plot():
    rows = {"a": torch.zeros(3, 1, 8, 8), "b": torch.ones(5, 1, 8, 8)}
    ax = showcase.image_rows(rows, n=4)
    assert ax.images[0].get_array().shape == (16, 32)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    with pytest.raises(ValueError):
        showcase.image_rows({"a": torch.zeros(2, 1, 8, 8), "b": torch.zeros(2, 1, 4, 4)})
    ax = showcase.plot_losses({"run": [[10, 1.0], [20, 0.5]]})
    assert len(ax.lines) == 1


def test_table_and_fmt():
    assert showcase.fmt(None) == "–" and showcase.fmt(float("nan")) == "–"
    assert showcase.fmt(1.234, 2) == "1.23" and showcase.fmt(2.0, signed=True) == "+2.0"
    table = showcase.markdown_table(["a", "b"], [[1, "x|y"]])
    assert table.splitlines() == ["| a | b |", "| --- | --- |", "| 1 | x\\|y |"]
    with pytest.raises(ValueError):
        showcase.markdown_table(["a"], [[1, 2]])
