"""The linear probe (MAE protocol on frozen features) and the kNN probe, on toy data with known answers."""

import math

import pytest
import torch
import torch.nn.functional as F

from ldae_lite import probe


def clusters(n_per_class=150, classes=10, dim=32, spread=0.5, seed=0, offset=0.0):
    """Gaussian clusters around random unit directions scaled by 4: linearly separable with a wide margin."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.nn.functional.normalize(torch.randn(classes, dim, generator=g), dim=1) * 4
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = centers[y] + spread * torch.randn(len(y), dim, generator=g) + offset
    return x, y


def split(seed=0, **kw):
    x, y = clusters(seed=seed, **kw)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed + 1))
    cut = int(0.7 * len(y))
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def test_linear_probe_separable_toy(capsys):
    tx, ty, vx, vy = split()
    result = probe.linear_probe(tx, ty, vx, vy, epochs=10)
    assert result.accuracy >= 99.0 and result.train_accuracy >= 99.0
    assert (result.epochs, result.batch_size, result.n_train, result.n_test) == (10, 256, len(tx), len(vx))
    # lr=None: chosen on held-out training features; batch 256, so lr = base lr x 256 / 256
    assert [b for b, _ in result.lr_sweep] == list(probe.LR_GRID)
    best = max(result.lr_sweep, key=lambda ba: ba[1])  # max() keeps the first of ties, as the probe does
    assert result.lr == pytest.approx(best[0]) and result.base_lr == pytest.approx(best[0])
    assert result.steps == 10 * -(-len(tx) // 256) and result.seconds > 0
    out = capsys.readouterr().out
    for word in ("BatchNorm1d(affine=False", "held-out", "lr =", "epochs", "steps", "test top-1"):
        assert word in out


def test_linear_probe_is_invariant_to_feature_scale():
    """The parameter-free BatchNorm standardises features, so the scale a model happens to produce
    does not change the probe (up to float rounding)."""
    tx, ty, vx, vy = split(seed=1)
    plain = probe.linear_probe(tx, ty, vx, vy, epochs=5, verbose=False)
    scaled = probe.linear_probe(tx * 300 + 7, ty, vx * 300 + 7, vy, epochs=5, verbose=False)
    assert plain.accuracy >= 99.0 and abs(plain.accuracy - scaled.accuracy) <= 0.5


def test_linear_probe_seeded_and_restores_threads():
    tx, ty, vx, vy = split(seed=2, spread=2.0)  # overlapping: accuracy well below 100
    threads = torch.get_num_threads()
    a = probe.linear_probe(tx, ty, vx, vy, epochs=3, lr=0.1, batch_size=64, verbose=False)
    b = probe.linear_probe(tx, ty, vx, vy, epochs=3, lr=0.1, batch_size=64, verbose=False)
    assert a.accuracy == b.accuracy and a.lr == 0.1 and a.batch_size == 64 and a.lr_sweep == ()
    assert torch.get_num_threads() == threads


def test_heads_trained_together_follow_their_own_paths():
    """The lr sweep trains K heads in one loop (loss_k scaled by lr_k, SGD at lr 1): each head must end
    where a head trained alone at its lr ends."""
    tx, ty, _, _ = split(seed=4, spread=2.0)
    z = (tx - tx.mean(0)) / tx.std(0)
    together_w, together_b = probe._train_heads(z, ty, [0.01, 0.3, 2.0], 10, 3, 64, 1e-3, seed=5)
    for k, lr in enumerate([0.01, 0.3, 2.0]):
        alone_w, alone_b = probe._train_heads(z, ty, [lr], 10, 3, 64, 1e-3, seed=5)
        torch.testing.assert_close(together_w[k], alone_w[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(together_b[k], alone_b[0], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(together_w[0], together_w[2])  # and the lrs really differ


def test_hand_written_gradient_matches_autograd():
    """_train_heads writes the softmax-regression gradient out by hand; torch.optim.SGD on autograd's
    gradient of the same loss, with the same init, shuffles and cosine lr, must end at the same head."""
    tx, ty, _, _ = split(seed=6, spread=2.0)
    z = (tx - tx.mean(0)) / tx.std(0)
    lr, epochs, batch, wd, classes = 0.3, 3, 64, 1e-3, 10
    got_w, got_b = probe._train_heads(z, ty, [lr], classes, epochs, batch, wd, seed=7)

    generator = torch.Generator().manual_seed(7)
    weight = torch.empty(z.shape[1], classes)
    torch.nn.init.trunc_normal_(weight, std=0.01, generator=generator)
    weight.requires_grad_()
    bias = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.SGD([weight, bias], lr=lr, momentum=0.9)
    steps = -(-len(z) // batch)
    total, step = epochs * steps, 0
    for _ in range(epochs):
        order = torch.randperm(len(z), generator=generator)
        for i in range(steps):
            idx = order[i * batch:(i + 1) * batch]
            opt.param_groups[0]["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = F.cross_entropy(z[idx] @ weight + bias, ty[idx]) + wd / 2 * (weight ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    torch.testing.assert_close(got_w[0], weight.detach(), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got_b[0], bias.detach(), atol=1e-5, rtol=1e-4)


def test_lr_sweep_prefers_the_lr_that_fits():
    """Three epochs at a tiny lr barely move the head: the held-out split must reject it."""
    tx, ty, vx, vy = split(seed=6, spread=1.5)
    result = probe.linear_probe(tx, ty, vx, vy, epochs=3, batch_size=64, base_lrs=(1e-5, 0.5), verbose=False)
    sweep = dict(result.lr_sweep)
    assert sweep[0.5] > sweep[1e-5] + 20
    assert result.lr == pytest.approx(0.5 * 64 / 256)
    with pytest.raises(ValueError, match="base_lrs"):
        probe.linear_probe(tx, ty, vx, vy, epochs=1, base_lrs=())


def test_linear_probe_rejects_bad_shapes():
    tx, ty, vx, vy = split()
    with pytest.raises(ValueError, match="same F"):
        probe.linear_probe(tx, ty, vx[:, :5], vy, epochs=1)
    with pytest.raises(ValueError, match="labels"):
        probe.linear_probe(tx, ty[:-1], vx, vy, epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        probe.linear_probe(tx, ty, vx, vy, epochs=0)


def test_knn_on_clusters():
    tx, ty, vx, vy = split(seed=3, spread=0.5)
    assert probe.knn_probe(tx, ty, vx, vy, k=20) >= 99.0
    assert probe.knn_probe(tx, ty, vx, vy, k=1, center=False, chunk=7) >= 99.0
    ox, oy, wx, wy = split(seed=3, spread=0.5, offset=40.0)  # a large shared offset: centring removes it
    assert probe.knn_probe(ox, oy, wx, wy, k=20) >= 99.0
    with pytest.raises(ValueError, match="k=0"):
        probe.knn_probe(tx, ty, vx, vy, k=0)


def test_extract_features_batches():
    images = torch.randn(37, 1, 4, 4)
    calls = []

    def fn(batch):
        calls.append(len(batch))
        return batch.flatten(1)[:, :3].double()

    feats = probe.extract_features(fn, images, batch_size=16)
    assert feats.shape == (37, 3) and feats.dtype == torch.float32 and calls == [16, 16, 5]
    torch.testing.assert_close(feats, images.flatten(1)[:, :3])
    with pytest.raises(ValueError, match="expected"):
        probe.extract_features(lambda b: b, images)


def test_raw_pixel_features_and_subsets():
    assert probe.raw_pixel_features(torch.zeros(5, 3, 8, 8)).shape == (5, 192)
    idx = probe.subset_indices(100, 10, seed=4)
    assert len(idx) == len(set(idx.tolist())) == 10 and (idx.diff() > 0).all()
    assert torch.equal(idx, probe.subset_indices(100, 10, seed=4))
    assert torch.equal(probe.subset_indices(5, None), torch.arange(5))
    assert torch.equal(probe.subset_indices(5, 50), torch.arange(5))


def test_raw_pixel_baseline_on_digits():
    result = probe.raw_pixel_baseline("digits", epochs=10, verbose=False)
    assert (result.n_train, result.n_test) == (1500, 297)
    assert result.linear.accuracy > 80.0 and result.knn > 88.0  # the last 297 digits are by other writers
