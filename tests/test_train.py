"""The training loop: lr schedule, learning, exact resume, checkpoint edge cases, Ctrl-C and SIGTERM."""

import dataclasses
import math
import os
import signal
import threading
import warnings

import pytest
import torch
from torch import nn

from ldae_lite.train import TrainConfig, TrainStats, lr_at, train

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    # Dropout draws from torch's global RNG, so exact resume also tests that state's restore.
    return nn.Sequential(nn.Linear(4, 16), nn.GELU(), nn.Dropout(0.1), nn.Linear(16, 1))


def toy_data(n: int = 256):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])  # a learnable linear target
    return x, y


def noisy_regression(model, x, y, generator):
    """Consumes random numbers from `generator` (input noise), like a denoising loss does."""
    noise = 0.1 * torch.randn(x.shape, generator=generator, device=x.device)
    return (model(x + noise).squeeze(-1).float() - y).pow(2).mean()


CFG = TrainConfig(steps=30, batch_size=32, lr=1e-2, warmup_frac=0.1, weight_decay=0.01, ckpt_every=5,
                  log_every=5)


def run(cfg=CFG, ckpt=None, on_step=None, seed=0):
    model = tiny_mlp()
    x, y = toy_data()
    stats = train(model, noisy_regression, x, y, cfg, device="cpu", ckpt_path=ckpt, seed=seed,
                  progress=False, on_step=on_step)
    return model, stats


def same_params(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


class Stop(Exception):
    pass


def stop_at(m, exc=Stop):
    def on_step(step, stats):
        if step == m:
            raise exc()
    return on_step


# -- schedule and config --------------------------------------------------------------------------


@pytest.mark.parametrize("steps, warmup_frac", [(100, 0.05), (1000, 0.25), (50, 0.0), (7, 0.5)])
def test_lr_schedule_warmup_peak_cosine(steps, warmup_frac):
    cfg = TrainConfig(steps=steps, batch_size=1, lr=2e-3, warmup_frac=warmup_frac)
    w = round(warmup_frac * steps)
    lrs = [lr_at(s, cfg) for s in range(steps + 1)]
    if w:
        assert lrs[0] == pytest.approx(2e-3 / w)
        assert all(b > a for a, b in zip(lrs[:w], lrs[1:w]))  # linear ramp up
    assert lrs[w] == pytest.approx(2e-3) and max(lrs) == pytest.approx(2e-3)  # peak at the end of warm-up
    assert all(b <= a for a, b in zip(lrs[w:], lrs[w + 1:]))  # then decays monotonically
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)  # half-cycle cosine ends at 0
    assert lrs[-2] < 0.05 * 2e-3 or steps - w < 10


def test_lr_schedule_pinned_values():
    cfg = TrainConfig(steps=100, batch_size=1, lr=1.0, warmup_frac=0.1)
    assert lr_at(4, cfg) == pytest.approx(0.5)
    assert lr_at(55, cfg) == pytest.approx(0.5)  # halfway through the cosine
    assert lr_at(70, cfg) == pytest.approx(0.5 * (1 + math.cos(math.pi * 60 / 90)))


@pytest.mark.parametrize("bad", [dict(steps=0), dict(lr=0.0), dict(warmup_frac=1.0), dict(grad_clip=0.0),
                                 dict(ckpt_every=0), dict(ckpt_seconds=-1.0), dict(log_every=0), dict(batch_size=0)])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        dataclasses.replace(CFG, **bad)


# -- learning -------------------------------------------------------------------------------------


def test_loss_decreases_and_stats():
    cfg = TrainConfig(steps=60, batch_size=32, lr=3e-2, log_every=10)
    model, stats = run(cfg)
    assert isinstance(stats, TrainStats) and stats.steps == 60 and stats.resumed_from is None
    assert [s for s, _ in stats.losses] == [10, 20, 30, 40, 50, 60]
    assert stats.losses[-1][1] < 0.1 * stats.losses[0][1]
    assert stats.seconds > 0 and stats.images_per_s > 0
    assert model.training  # mode restored


def test_on_step_sees_every_step():
    seen = []
    run(dataclasses.replace(CFG, steps=12, ckpt_every=None), on_step=lambda s, st: seen.append(s))
    assert seen == list(range(1, 13))


def test_batch_indices_depend_on_seed():
    a, _ = run(dataclasses.replace(CFG, ckpt_every=None), seed=0)
    b, _ = run(dataclasses.replace(CFG, ckpt_every=None), seed=1)
    assert not same_params(a, b)


# -- checkpoints and exact resume -----------------------------------------------------------------


@pytest.mark.parametrize("exc, m, resumed_from", [(Stop, 13, 10), (KeyboardInterrupt, 13, 13)])
def test_resume_is_exact(tmp_path, exc, m, resumed_from):
    ref, ref_stats = run()  # uninterrupted
    ckpt = tmp_path / "run.pt"
    with pytest.raises(exc):  # an error loses the steps since the last checkpoint; Ctrl-C loses none
        run(ckpt=ckpt, on_step=stop_at(m, exc))
    assert torch.load(ckpt, weights_only=True)["step"] == resumed_from
    model, stats = run(ckpt=ckpt)
    assert stats.resumed_from == resumed_from and stats.steps == CFG.steps
    assert same_params(model, ref)
    assert stats.losses == ref_stats.losses  # the checkpoint holds the loss summed since the last log point


def test_completed_checkpoint_returns_at_once(tmp_path, capsys):
    ckpt = tmp_path / "run.pt"
    ref, ref_stats = run(ckpt=ckpt)
    calls = []
    model, stats = run(ckpt=ckpt, on_step=lambda s, st: calls.append(s))
    assert calls == [] and "complete" in capsys.readouterr().out
    assert same_params(model, ref)  # the trained weights are loaded
    assert stats.steps == CFG.steps and stats.losses == ref_stats.losses


def test_corrupted_checkpoint_warns_and_starts_over(tmp_path):
    ref, _ = run()
    ckpt = tmp_path / "run.pt"
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.warns(RuntimeWarning, match="run.pt"):
        model, stats = run(ckpt=ckpt)
    assert stats.resumed_from is None and same_params(model, ref)
    assert torch.load(ckpt, weights_only=True)["step"] == CFG.steps  # replaced by a good one


def test_truncated_checkpoint_warns(tmp_path):
    ckpt = tmp_path / "run.pt"
    with pytest.raises(Stop):
        run(ckpt=ckpt, on_step=stop_at(7))
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    with pytest.warns(RuntimeWarning, match="corrupted"):
        _, stats = run(ckpt=ckpt)
    assert stats.resumed_from is None


def test_config_mismatch_raises_naming_fields(tmp_path):
    ckpt = tmp_path / "run.pt"
    with pytest.raises(Stop):
        run(ckpt=ckpt, on_step=stop_at(7))
    with pytest.raises(ValueError, match="lr.*batch_size|batch_size.*lr"):
        run(dataclasses.replace(CFG, lr=2e-2, batch_size=16), ckpt=ckpt)
    with pytest.raises(ValueError, match="seed"):
        run(ckpt=ckpt, seed=3)
    # bookkeeping fields do not change the result, so they may differ
    _, stats = run(dataclasses.replace(CFG, ckpt_every=3), ckpt=ckpt)
    assert stats.resumed_from == 5


def test_keyboard_interrupt_saves_current_step(tmp_path, capsys):
    ckpt = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        run(dataclasses.replace(CFG, ckpt_every=None), ckpt=ckpt, on_step=stop_at(9, KeyboardInterrupt))
    assert torch.load(ckpt, weights_only=True)["step"] == 9
    assert "step 9 saved" in capsys.readouterr().out
    assert not [p for p in tmp_path.iterdir() if p.name != "run.pt"]  # no temporary files left


def test_timed_checkpoints_at_log_points(tmp_path):
    """ckpt_seconds=0: a checkpoint at every log point; None: none before the end."""
    ckpt = tmp_path / "run.pt"
    with pytest.raises(Stop):
        run(dataclasses.replace(CFG, ckpt_every=None, ckpt_seconds=0.0), ckpt=ckpt, on_step=stop_at(13))
    assert torch.load(ckpt, weights_only=True)["step"] == 10  # log_every = 5: steps 5 and 10 were saved
    ckpt.unlink()
    with pytest.raises(Stop):
        run(dataclasses.replace(CFG, ckpt_every=None, ckpt_seconds=None), ckpt=ckpt, on_step=stop_at(13))
    assert not ckpt.exists()


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals: main thread")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_after_the_current_step(tmp_path, sig):
    """A real Ctrl-C (SIGINT) or SIGTERM mid-step finishes that step, saves it and raises KeyboardInterrupt;
    the handlers in place before are back afterwards."""
    ref, _ = run()
    ckpt = tmp_path / "run.pt"
    before = signal.getsignal(sig)

    def interrupting_loss(model, x, y, generator):
        loss = noisy_regression(model, x, y, generator)
        if interrupting_loss.calls == 11:
            os.kill(os.getpid(), sig)  # arrives during step 12's forward pass
        interrupting_loss.calls += 1
        return loss
    interrupting_loss.calls = 0

    x, y = toy_data()
    with pytest.raises(KeyboardInterrupt):
        train(tiny_mlp(), interrupting_loss, x, y, CFG, device="cpu", ckpt_path=ckpt, progress=False)
    assert signal.getsignal(sig) is before
    assert torch.load(ckpt, weights_only=True)["step"] == 12
    model, _ = run(ckpt=ckpt)
    assert same_params(model, ref)


def test_labels_none_and_length_check():
    x, y = toy_data()
    cfg = dataclasses.replace(CFG, steps=3, ckpt_every=None)
    seen = []
    train(tiny_mlp(), lambda m, xb, yb, g: seen.append(yb) or m(xb).pow(2).mean(), x, None, cfg,
          device="cpu", progress=False)
    assert seen == [None] * 3
    with pytest.raises(ValueError, match="labels"):
        train(tiny_mlp(), noisy_regression, x, y[:10], cfg, device="cpu", progress=False)


def test_nan_loss_raises():
    x, y = toy_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(FloatingPointError, match="loss is nan at step 1 while every value of its input"):
            train(tiny_mlp(), lambda m, xb, yb, g: m(xb).mean() * float("nan"), x, y,
                  dataclasses.replace(CFG, ckpt_every=None), device="cpu", progress=False)


def test_a_non_finite_input_is_named_before_the_loss():
    """A batch that already holds NaN: the error says the input went first (the data, not the training)."""
    x, y = toy_data()
    x[:, 2] = float("nan")  # every row: the first batch has it
    with pytest.raises(FloatingPointError, match=r"the input batch of step 1: 32 of 128 values are not finite "
                                                 r"\(32 NaN, 0 inf\).*The input was not finite before the loss"):
        train(tiny_mlp(), noisy_regression, x, y, dataclasses.replace(CFG, ckpt_every=None), device="cpu",
              progress=False)


def test_a_diverging_loss_stops_before_its_update_and_the_checkpoint_keeps_the_weights_before(tmp_path):
    """The loss goes non-finite at step 7 with a finite batch: training stops before the update, saying the
    training diverged; the last checkpoint (step 6, ckpt_every=1) holds finite weights and resumes."""
    x, y = toy_data()
    calls = []

    def diverges_at_7(model, xb, yb, g):
        calls.append(1)
        loss = noisy_regression(model, xb, yb, g)
        return loss * float("inf") if len(calls) == 7 else loss

    model = tiny_mlp()
    with pytest.raises(FloatingPointError, match="loss is inf at step 7 while every value of its input batch is "
                                                 "finite: the training diverged"):
        train(model, diverges_at_7, x, y, dataclasses.replace(CFG, ckpt_every=1), device="cpu",
              ckpt_path=tmp_path / "run.pt", progress=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the bad update was never applied
    saved = torch.load(tmp_path / "run.pt", weights_only=True)
    assert saved["step"] == 6 and all(torch.isfinite(v).all() for v in saved["model"].values())


def test_a_checkpoint_with_weights_that_are_not_finite_is_refused_and_training_starts_over(tmp_path):
    _, _ = run(ckpt=tmp_path / "run.pt")
    saved = torch.load(tmp_path / "run.pt", weights_only=True)
    saved["model"]["0.weight"][1, 2] = float("nan")
    torch.save(saved, tmp_path / "run.pt")
    with pytest.warns(RuntimeWarning, match=r"run.pt is corrupted or incomplete .*model\['0.weight'\]: 1 of 64 "
                                            r"values are not finite \(1 NaN, 0 inf\)"):
        model, stats = run(ckpt=tmp_path / "run.pt")
    assert stats.resumed_from is None and same_params(model, run()[0])  # trained from scratch, as a new run


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resume_is_exact_on_cuda(tmp_path):
    """Fused AdamW, CUDA generators and the CUDA RNG state survive a checkpoint too."""
    x, y = toy_data()
    models = []
    for ckpt, on_step in [(None, None), (tmp_path / "run.pt", stop_at(13, KeyboardInterrupt)),
                          (tmp_path / "run.pt", None)]:
        model = tiny_mlp()
        try:
            train(model, noisy_regression, x, y, CFG, device="cuda", ckpt_path=ckpt, progress=False,
                  on_step=on_step)
        except KeyboardInterrupt:
            continue
        models.append(model)
    assert same_params(*models)
