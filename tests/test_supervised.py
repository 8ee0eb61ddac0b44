"""The label-trained CNN (training, exact resume after SIGTERM), its perceptual loss and the Frechet distance."""

import os
import signal
import threading

import numpy as np
import pytest
import torch

from ldae_lite import supervised
from ldae_lite.supervised import (
    SmallCNN,
    accuracy,
    embed_images,
    frechet_distance,
    frozen_perceptual_loss,
    load_cnn,
    perceptual_loss,
    save_cnn,
    train_cnn,
)


def toy_problem(n=256, seed=0):
    """Two classes: a bright square in the top-left or in the bottom-right corner, plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    images = 0.3 * torch.randn(n, 1, 32, 32, generator=g) - 0.5
    images[labels == 0, :, 4:12, 4:12] += 1.0
    images[labels == 1, :, 20:28, 20:28] += 1.0
    return images, labels


def test_frechet_distance_identical_and_shifted_sets():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 5)) @ rng.normal(size=(5, 5))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    mu = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    assert frechet_distance(a, a + mu) == pytest.approx((mu**2).sum(), rel=1e-6)
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(a + mu)) == pytest.approx((mu**2).sum(), rel=1e-6)
    # two different Gaussians: N(0, I) vs N(0, 4 I) in F dims gives F * (1 + 4 - 2 * 2) = F
    b = rng.normal(size=(20000, 3))
    assert frechet_distance(b, 2 * rng.normal(size=(20000, 3))) == pytest.approx(3.0, rel=0.05)


def test_frechet_distance_rejects_bad_shapes():
    with pytest.raises(ValueError, match="equal F"):
        frechet_distance(np.zeros((10, 3)), np.zeros((10, 4)))


def test_small_cnn_shapes_and_layers():
    cnn = SmallCNN(3, num_classes=7, width=8)
    x = torch.randn(2, 3, 32, 32)
    feats = cnn.features(x)
    assert [tuple(f.shape) for f in feats] == [(2, 8, 16, 16), (2, 16, 8, 8), (2, 32, 8, 8)]
    assert cnn.embed(x).shape == (2, 32) and cnn(x).shape == (2, 7)
    assert len(cnn.features(x, layers=("block2",))) == 1
    with pytest.raises(ValueError, match="conv9"):
        cnn.features(x, layers=("conv9",))


def test_small_cnn_learns_a_toy_problem(tmp_path):
    images, labels = toy_problem()
    cnn, stats = train_cnn(images, labels, steps=40, batch_size=32, lr=3e-3, width=8, progress=False)
    test_images, test_labels = toy_problem(seed=1)
    assert accuracy(cnn, test_images, test_labels) > 95.0
    assert stats["train_accuracy"] > 95.0 and stats["steps"] == 40
    save_cnn(cnn, tmp_path / "cnn.pt")
    back = load_cnn(tmp_path / "cnn.pt")
    torch.testing.assert_close(back(test_images), cnn(test_images))
    assert embed_images(back, test_images).shape == (len(test_images), back.embed_dim)


def test_perceptual_loss_is_zero_for_equal_images_and_differentiable():
    cnn = SmallCNN(1, width=8).eval().requires_grad_(False)
    x = torch.randn(4, 1, 32, 32)
    assert perceptual_loss(cnn, x, x).item() == pytest.approx(0.0, abs=1e-6)
    y = (x + 0.5 * torch.randn_like(x)).requires_grad_(True)
    loss = perceptual_loss(cnn, y, x)
    loss.backward()
    assert loss.item() > 0 and y.grad.abs().sum() > 0


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals: main thread")
def test_train_cnn_stops_on_sigterm_and_resumes_exactly(tmp_path, monkeypatch):
    images, labels = toy_problem()
    options = dict(steps=12, batch_size=16, lr=3e-3, width=8, progress=False, seed=2)
    ref, ref_stats = train_cnn(images, labels, **options)
    ckpt = tmp_path / "cnn.partial.pt"
    real_loss, calls = supervised.F.cross_entropy, []

    def signalling_loss(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives during step 5's forward pass
        return real_loss(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(supervised.F, "cross_entropy", signalling_loss)
        with pytest.raises(KeyboardInterrupt):
            train_cnn(images, labels, ckpt_path=ckpt, **options)
    assert torch.load(ckpt, weights_only=True)["step"] == 5
    with pytest.raises(ValueError, match="width"):
        train_cnn(images, labels, ckpt_path=ckpt, **{**options, "width": 16})
    cnn, stats = train_cnn(images, labels, ckpt_path=ckpt, **options)
    for key, value in ref.state_dict().items():  # BatchNorm running statistics included
        assert torch.equal(cnn.state_dict()[key], value), key
    assert stats["train_accuracy"] == ref_stats["train_accuracy"] and stats["final_loss"] == ref_stats["final_loss"]


def test_frozen_perceptual_loss_leaves_the_network_alone():
    cnn = SmallCNN(1, width=8).train()
    loss = frozen_perceptual_loss(cnn)
    x, y = torch.randn(2, 1, 32, 32), torch.randn(2, 1, 32, 32, requires_grad=True)
    loss(y, x).backward()
    assert cnn.training and all(p.requires_grad and p.grad is None for p in cnn.parameters())
    torch.testing.assert_close(loss(y, x), perceptual_loss(cnn.eval(), y, x))
