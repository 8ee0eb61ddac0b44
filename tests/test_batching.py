"""batched(): the one inference loop."""

import pytest
import torch

from ldae_lite.batching import batched


def test_batches_in_order_without_gradients():
    x = torch.randn(37, 3)
    w = torch.randn(3, 2, requires_grad=True)
    sizes = []

    def fn(batch):
        sizes.append(len(batch))
        return batch @ w

    out = batched(fn, x, 16)
    assert sizes == [16, 16, 5] and not out.requires_grad
    torch.testing.assert_close(out, (x @ w).detach())


def test_moves_batches_to_the_device_and_keeps_outputs_where_fn_puts_them():
    x = torch.arange(10.0).view(5, 2)
    seen = []
    out = batched(lambda b: seen.append(b.device) or b.sum(1, keepdim=True), x, 2, device="cpu")
    assert out.shape == (5, 1) and set(seen) == {torch.device("cpu")}


@pytest.mark.parametrize("batch_size, n, match", [(0, 4, "batch_size=0"), (4, 0, "N = 0")])
def test_bad_input(batch_size, n, match):
    with pytest.raises(ValueError, match=match):
        batched(lambda b: b, torch.zeros(n, 2), batch_size)
