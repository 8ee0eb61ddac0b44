"""figures: image rows, loss curves, how much a label helps (Fig. 8's grid: test_outputs)."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from ldae_lite import figures  # noqa: E402


def test_image_rows_and_losses_plot():
    rows = {"a": torch.zeros(3, 1, 8, 8), "b": torch.ones(5, 1, 8, 8)}
    ax = figures.image_rows(rows, n=4)
    assert ax.images[0].get_array().shape == (16, 32)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    with pytest.raises(ValueError):
        figures.image_rows({"a": torch.zeros(2, 1, 8, 8), "b": torch.zeros(2, 1, 4, 4)})
    ax = figures.plot_losses({"run": [[10, 1.0], [20, 0.5]]})
    assert len(ax.lines) == 1


def test_plot_label_use():
    use = dict(t=[100, 500], gain=[10.0, 20.0], wrong=[1.2, 1.5], null=[1.0, 1.0], true=[0.9, 0.8], pure_noise=30.0)
    ax = figures.plot_label_use(use)
    assert len(ax.patches) == 4 and [t.get_text() for t in ax.get_xticklabels()] == ["100", "500"]
