"""The checks of notebook 03's exercises (KL term, hinge GAN losses) accept the right answer and name mistakes."""

import torch
import torch.nn.functional as F

from ldae_lite.exercises import tokenizer_losses as ex
from ldae_lite.tokenizers import gaussian_kl


def test_kl_accepts_package_and_names_mistakes(capsys):
    assert ex.check_kl(gaussian_kl) and capsys.readouterr().out.startswith("correct")
    cases = {
        "1/2 is missing": lambda m, lv: (m**2 + lv.exp() - 1 - lv).mean(),
        "summed": lambda m, lv: 0.5 * (m**2 + lv.exp() - 1 - lv).sum(),
        "standard deviation": lambda m, lv: 0.5 * (m**2 + (0.5 * lv).exp() - 1 - lv).mean(),
        "sign of the log term": lambda m, lv: 0.5 * (m**2 + lv.exp() - 1 + lv).mean(),
        "scalar": lambda m, lv: 0.5 * (m**2 + lv.exp() - 1 - lv),
    }
    for expected, fn in cases.items():
        assert not ex.check_kl(fn)
        out = capsys.readouterr().out
        assert out.startswith("not quite") and expected in out, (expected, out)


def test_kl_unsolved(capsys):
    def stub(mean, logvar):
        raise NotImplementedError

    assert not ex.check_kl(stub) and capsys.readouterr().out.startswith("not solved yet")


def test_hinge_matches_the_package_and_names_mistakes(capsys):
    # the reference is what conv_vae.adversarial_losses computes from the logits
    real, fake = torch.randn(5, 1, 4, 4), torch.randn(5, 1, 4, 4)
    d, g = ex.hinge_reference(real, fake)
    assert torch.isclose(d, F.relu(1 - real).mean() + F.relu(1 + fake).mean()) and torch.isclose(g, -fake.mean())
    assert ex.check_hinge(ex.hinge_reference) and capsys.readouterr().out.startswith("correct")
    cases = {
        "swapped": lambda r, f: (F.relu(1 + r).mean() + F.relu(1 - f).mean(), -f.mean()),
        "relu": lambda r, f: ((1 - r).mean() + (1 + f).mean(), -f.mean()),
        "non-saturating": lambda r, f: (F.softplus(-r).mean() + F.softplus(f).mean(), -f.mean()),
        "wrong sign": lambda r, f: (F.relu(1 - r).mean() + F.relu(1 + f).mean(), f.mean()),
        "wrong order": lambda r, f: ex.hinge_reference(r, f)[::-1],
    }
    for expected, fn in cases.items():
        assert not ex.check_hinge(fn)
        out = capsys.readouterr().out
        assert out.startswith("not quite") and expected in out, (expected, out)
