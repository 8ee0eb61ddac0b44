"""Checks for the exercises of notebook 03 (the tokenizer's losses): the VAE's KL term and the hinge GAN
losses of the adversarial term.

Each ``check_*`` calls the student's function on small random inputs, compares it with the package's
own version, prints one line (``correct: ...``, ``not solved yet: ...`` or ``not quite: <what is wrong>``)
and returns a true Verdict only when it is right. It never raises.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..tokenizers import gaussian_kl
from ._check import Verdict, _call, _report


def _scalar(out, what):
    if not torch.is_tensor(out) or out.numel() != 1:
        return f"{what} should be a scalar tensor (average over all elements), got {getattr(out, 'shape', out)}"
    return None


def _near(a, b) -> bool:
    return abs(float(a) - float(b)) <= 1e-5 * max(1.0, abs(float(b)))


# --------------------------------------------------------------------------------------------------
# exercise 1: KL[N(mean, exp(logvar)) || N(0, I)], averaged over elements
# --------------------------------------------------------------------------------------------------
def check_kl(fn) -> Verdict:
    """fn(mean, logvar) -> scalar: 0.5 * (mean^2 + exp(logvar) - 1 - logvar), averaged over all elements."""
    def body():
        gen = torch.Generator().manual_seed(0)
        mean, logvar = torch.randn(4, 2, 3, 3, generator=gen), 0.5 * torch.randn(4, 2, 3, 3, generator=gen)
        out, err = _call(fn, mean, logvar)
        if err:
            return err
        bad = _scalar(out, "the KL")
        if bad:
            return bad
        ref = gaussian_kl(mean, logvar)
        if _near(out, ref):
            zero, _ = _call(fn, torch.zeros(2, 3), torch.zeros(2, 3))
            if zero is not None and abs(float(zero)) > 1e-6:
                return "KL[N(0, 1) || N(0, 1)] must be 0"
            return None
        var = logvar.exp()
        mistakes = [
            (2 * ref, "the factor 1/2 is missing"),
            (-ref, "the sign is flipped: a KL divergence is >= 0"),
            (ref * mean.numel(), "you summed over the elements; average them (mean), as the package does, so "
                                 "the weight kl_weight does not depend on the latent size"),
            (0.5 * (mean**2 + logvar**2 - 1 - torch.log(logvar.abs() + 1e-12)).mean(),
             "logvar is the log of the variance: the variance is exp(logvar), not logvar**2"),
            (0.5 * (mean**2 + var - 1 + logvar).mean(), "the sign of the log term: ... - 1 - logvar"),
            (0.5 * (var - 1 - logvar).mean(), "the mean^2 term is missing (it pulls the posterior mean to 0)"),
            (0.5 * (mean**2 + var - logvar).mean(), "the - 1 is missing (without it, KL of N(0,1) to N(0,1) is 0.5)"),
            (0.5 * (mean**2 + (0.5 * logvar).exp() - 1 - logvar).mean(),
             "you used the standard deviation exp(logvar / 2) where the variance exp(logvar) belongs"),
        ]
        for wrong, message in mistakes:
            if _near(out, wrong):
                return message
        return f"got {float(out):.5f}, expected {float(ref):.5f} = mean of 0.5 * (mean^2 + exp(logvar) - 1 - logvar)"

    return _report(fn, body, "KL[N(mean, exp(logvar)) || N(0, I)] = 0.5 (mean^2 + exp(logvar) - 1 - logvar), "
                             "averaged")


# --------------------------------------------------------------------------------------------------
# exercise 2: hinge GAN losses
# --------------------------------------------------------------------------------------------------
def hinge_reference(logits_real: torch.Tensor, logits_fake: torch.Tensor):
    """(d_loss, g_loss) of the hinge GAN, as in ``conv_vae.adversarial_losses`` (given the logits)."""
    d_loss = F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean()
    return d_loss, -logits_fake.mean()


def check_hinge(fn) -> Verdict:
    """fn(logits_real, logits_fake) -> (d_loss, g_loss), both scalars."""
    def body():
        gen = torch.Generator().manual_seed(0)
        real, fake = 1.5 * torch.randn(4, 1, 8, 8, generator=gen), 1.5 * torch.randn(4, 1, 8, 8, generator=gen)
        out, err = _call(fn, real, fake)
        if err:
            return err
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            return "return two losses: (d_loss, g_loss)"
        d, g = out
        for value, what in ((d, "d_loss"), (g, "g_loss")):
            bad = _scalar(value, what)
            if bad:
                return bad
        d_ref, g_ref = hinge_reference(real, fake)
        d_ok, g_ok = _near(d, d_ref), _near(g, g_ref)
        if d_ok and g_ok:
            return None
        if _near(d, g_ref) and _near(g, d_ref):
            return "the two losses are returned in the wrong order: (d_loss, g_loss)"
        messages = []
        if not d_ok:
            d_mistakes = [
                (F.relu(1.0 + real).mean() + F.relu(1.0 - fake).mean(),
                 "d_loss has real and fake swapped: the discriminator pushes real logits up to >= 1 "
                 "(relu(1 - D(real))) and fake logits down to <= -1 (relu(1 + D(fake)))"),
                ((1.0 - real).mean() + (1.0 + fake).mean(),
                 "d_loss lacks the relu: the hinge stops pushing once a logit is beyond the margin (>= 1 for "
                 "real, <= -1 for fake)"),
                (F.softplus(-real).mean() + F.softplus(fake).mean(),
                 "that is the non-saturating (binary cross-entropy) GAN loss; VQGAN uses the hinge loss "
                 "relu(1 - D(real)) + relu(1 + D(fake))"),
                (F.relu(1.0 - real).mean() + F.relu(1.0 - fake).mean(),
                 "the fake term needs relu(1 + D(fake)): the discriminator wants fake logits low"),
                (F.relu(-real).mean() + F.relu(fake).mean(), "the margin 1 is missing: relu(1 - D(real))"),
            ]
            messages.append(next((m for w, m in d_mistakes if _near(d, w)),
                                 f"d_loss is {float(d):.4f}, expected {float(d_ref):.4f}"))
        if not g_ok:
            g_mistakes = [
                (fake.mean(), "g_loss has the wrong sign: the generator wants D(fake) high, so it minimises "
                              "-mean D(fake)"),
                (F.relu(1.0 - fake).mean(), "g_loss should not be clipped by a hinge: VQGAN's generator "
                                            "minimises -mean D(fake), without relu"),
                (F.softplus(-fake).mean(), "that is the non-saturating generator loss; use -mean D(fake)"),
            ]
            messages.append(next((m for w, m in g_mistakes if _near(g, w)),
                                 f"g_loss is {float(g):.4f}, expected {float(g_ref):.4f}"))
        return "; ".join(messages)

    return _report(fn, body, "d_loss = mean relu(1 - D(real)) + mean relu(1 + D(fake)), g_loss = -mean D(fake)")
