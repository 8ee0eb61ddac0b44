"""Checks for the exercises of notebooks 07-09 (toward a classical DAE, what matters, the trajectory).

Each ``check_*`` calls the student's function on small random inputs, compares it with the package's
own version, prints one line (``correct: ...``, ``not solved yet: ...`` or ``not quite: <what is wrong>``)
and returns a true Verdict only when it is right. It never raises, so a notebook runs top to bottom with the
exercise left open.
"""

from __future__ import annotations

import math

import torch

from ..noise import NoiseSchedule
from ..objectives import Objective, _residual_weights, residual_weighted_error
from ..tokenizers import make_tokenizer
from ._check import Verdict, _call, _report


def _close(a, b, tol=1e-5) -> bool:
    return torch.is_tensor(a) and a.shape == b.shape and torch.allclose(a.float(), b.float(), rtol=1e-4, atol=tol)


def _tensor(out, expected_shape, what: str):
    """None when ``out`` is a tensor of the expected shape, else a message."""
    if not torch.is_tensor(out):
        return f"{what} should be a torch tensor, got {type(out).__name__}"
    if tuple(out.shape) != tuple(expected_shape):
        return f"{what} has shape {tuple(out.shape)}; expected {tuple(expected_shape)}"
    return None


def _random_basis(D: int, gen: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(D, D, generator=gen, dtype=torch.float64))
    return q.T.float()  # (D, D), rows orthonormal


# --------------------------------------------------------------------------------------------------
# notebook 07: the residual weight w_i and the residual-weighted loss of eq. (4)
# --------------------------------------------------------------------------------------------------
def check_residual_weights(fn) -> Verdict:
    """fn(D, d, w) -> (D,) weights: 1 for the first d PCA components, w for the other D - d."""
    def body():
        for D, d, w in ((64, 16, 0.1), (12, 3, 0.5), (5, 5, 0.1)):
            out, err = _call(fn, D, d, w)
            if err:
                return err
            bad = _tensor(out, (D,), f"fn({D}, {d}, {w})")
            if bad:
                return bad
            expected = _residual_weights(D, d, w, "cpu")
            if _close(out, expected):
                continue
            if _close(out, 1 - expected + w):  # swapped
                return f"fn({D}, {d}, {w}) puts w on the first d components and 1 on the rest: it is the other way " \
                       "round (the top-d components carry the signal, the rest is PCA residual)"
            if _close(out, _residual_weights(D, d + 1, w, "cpu")) or _close(out, _residual_weights(D, d - 1, w, "cpu")):
                return f"fn({D}, {d}, {w}) is off by one: exactly the first d = {d} entries are 1"
            return f"fn({D}, {d}, {w}) = {out[: min(D, 6)].tolist()}...; expected {expected[: min(D, 6)].tolist()}..."
        print("correct: w_i = 1 for i <= d and w for i > d (Sec. 4.3, eq. 4)")
        return None
    return _report(fn, body)


def check_residual_weighted_error(fn) -> Verdict:
    """fn(residual (N, L, D), basis (D, D), d, w) -> (N,): eq. (4), averaged over tokens and D per sample."""
    def body():
        gen = torch.Generator().manual_seed(0)
        N, L, D, d, w = 3, 4, 16, 5, 0.1
        residual = torch.randn(N, L, D, generator=gen)
        basis = _random_basis(D, gen)
        out, err = _call(fn, residual, basis, d, w)
        if err:
            return err
        if torch.is_tensor(out) and out.ndim == 0:
            return "it returns one number for the whole batch; return one value per sample, shape (N,) " \
                   "(average over tokens and D only: the objective weighs each sample by lambda_t afterwards)"
        bad = _tensor(out, (N,), "the result")
        if bad:
            return bad
        expected = residual_weighted_error(residual, basis, d, w)
        if _close(out, expected):
            print("correct: r = V_full (x_0 - net(x_t)), weighted w_i r_i^2, averaged (eq. 4); it matches "
                  "objectives.residual_weighted_error")
            return None
        weights = _residual_weights(D, d, w, "cpu")
        r = residual @ basis.T
        wrong = {
            "the weights are applied in pixel space, not in the PCA basis: rotate first, r = residual @ basis.T, "
            "then weight r^2": (weights * residual.pow(2)).mean(dim=(1, 2)),
            "the rotation goes the wrong way: the rows of basis are the components, so the coordinates are "
            "residual @ basis.T (not residual @ basis)": (weights * (residual @ basis).pow(2)).mean(dim=(1, 2)),
            "the weights are swapped: w_i = 1 for the first d components, w for the rest":
                ((1 - weights + w) * r.pow(2)).mean(dim=(1, 2)),
            "no weights at all: this is the plain mean squared error (an orthonormal rotation keeps the norm); "
            "multiply r^2 by w_i": residual.pow(2).mean(dim=(1, 2)),
            "only the first d components count: the other D - d must stay in with weight w, not 0 (the "
            "target is the original image, PCA residual included)": (r[..., :d].pow(2)).mean(dim=(1, 2)),
            "only the first d components count: the other D - d must stay in with weight w, not 0":
                (weights[:d] * r[..., :d].pow(2)).sum(dim=(1, 2)) / (L * D),
            "the residual is not squared": (weights * r).mean(dim=(1, 2)),
            "it sums over tokens and D; average instead (so that w = 1 gives the plain MSE)":
                (weights * r.pow(2)).sum(dim=(1, 2)),
            "it sums over D; average over tokens and D": (weights * r.pow(2)).sum(-1).mean(-1),
        }
        for message, value in wrong.items():
            if _close(out, value):
                return message
        return f"got {out.tolist()}, expected {expected.tolist()}"
    return _report(fn, body)


def check_loss_weight(fn) -> Verdict:
    """fn(sigma tensor) -> lambda = 1 / (1 + sigma^2), the weight once input scaling is gone (Sec. 4.3)."""
    def body():
        sigma = torch.linspace(0, math.sqrt(2), 7)
        out, err = _call(fn, sigma)
        if err:
            return err
        bad = _tensor(out, sigma.shape, "fn(sigma)")
        if bad:
            return bad
        expected = 1 / (1 + sigma**2)
        if _close(out, expected):
            print("correct: lambda_t = 1 / (1 + sigma_t^2): 1 for clean inputs, 1/3 at sigma = sqrt(2)")
            return None
        wrong = {
            "sigma is not squared: lambda = 1 / (1 + sigma^2)": 1 / (1 + sigma),
            "that is gamma^2 = 1 - sigma^2, the weight *with* input scaling (row 9); without it gamma = 1 and "
            "lambda = 1 / (1 + sigma^2)": 1 - sigma**2,
            "that is the signal-to-noise ratio 1 / sigma^2 (Salimans & Ho); the paper uses 1 / (1 + sigma^2)":
                1 / sigma.clamp_min(1e-12) ** 2,
            "that is 1 + sigma^2; lambda is its inverse (more weight on cleaner inputs)": 1 + sigma**2,
        }
        for message, value in wrong.items():
            if _close(out, value):
                return message
        return f"fn(sigma) = {out.tolist()}; expected {expected.tolist()} for sigma = {sigma.tolist()}"
    return _report(fn, body)


# --------------------------------------------------------------------------------------------------
# notebook 08: the probe's noisy input at a fixed t
# --------------------------------------------------------------------------------------------------
def _toy_objectives():
    """Two small objectives on a fitted PCA: l-DAE's (gamma = 1, image input) and one with input scaling."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(64, 1, 16, 16, generator=gen).clamp(-1, 1)
    tok = make_tokenizer("patch_pca", 4, image_size=16, channels=1, patch_size=8)
    tok.fit(images, progress=False)
    ldae = Objective(tok, NoiseSchedule("linear_sigma", input_scaling=False), target="image",
                     input_space="image", output_space="image", loss_weight="inv_1_plus_sigma2")
    scaled = Objective(tok, NoiseSchedule("linear_gamma2"), target="x0", loss_weight="gamma2")
    return tok, ldae, scaled


def check_noisy_input(fn) -> Verdict:
    """fn(obj, z0 (N, L, d), t (N,) long, eps (N, L, d)) -> what the network sees: obj.net_input(z_t)."""
    def body():
        tok, ldae, scaled = _toy_objectives()
        gen = torch.Generator().manual_seed(1)
        z0 = torch.randn(3, tok.num_tokens, tok.latent_dim, generator=gen)
        eps = torch.randn(z0.shape, generator=gen)
        t = torch.tensor([40, 400, 800])
        for name, obj in (("l-DAE (gamma = 1, image input)", ldae), ("predict-x0 (input scaling, latent input)",
                                                                      scaled)):
            out, err = _call(fn, obj, z0, t, eps)
            if err:
                return err
            zt = obj.schedule.add_noise(z0, t, eps)
            expected = obj.net_input(zt)
            if _close(out, expected):
                continue
            if _close(out, zt) and obj.input_space == "image":
                return f"for {name} it returns the noisy latent z_t (N, L, d); this network sees the inverse PCA " \
                       "of it, obj.net_input(z_t) (N, L, D)"
            sigma = obj.schedule.sigma(t).view(-1, 1, 1)
            if _close(out, obj.net_input(z0 + sigma * eps)):
                return f"for {name} it forgets the input scaling: z_t = gamma_t z_0 + sigma_t eps (eq. 1)"
            if _close(out, obj.net_input(z0)):
                return f"for {name} no noise was added"
            bad = _tensor(out, expected.shape, f"for {name} the result")
            return bad or f"for {name} the result differs from obj.net_input(gamma_t z_0 + sigma_t eps)"
        print("correct: z_t = gamma_t z_0 + sigma_t eps (eq. 1), then what the network sees, obj.net_input(z_t)")
        return None
    return _report(fn, body)


# --------------------------------------------------------------------------------------------------
# notebook 09: is a change bigger than seed noise?
# --------------------------------------------------------------------------------------------------
def _within(delta, a, b, n, k=2.0, combine=math.hypot, size=abs, per_mean=True):
    if a is None or b is None:
        return None
    return size(delta) <= k * combine(a, b) / (math.sqrt(n) if per_mean else 1.0)


def check_within_noise(fn) -> Verdict:
    """fn(delta, std_before, std_after, n) -> True when |delta| <= 2 sqrt((std_before^2 + std_after^2) / n)
    (two standard errors of a difference of two means over n seeds), False when larger, None when a std
    is unknown (one seed)."""
    def body():
        cases = [(0.5, 0.2, 0.2, 1), (1.0, 0.2, 0.2, 1), (-1.0, 0.2, 0.2, 1), (-0.5, 0.2, 0.2, 1),
                 (0.7, 0.2, 0.2, 1), (0.6, 0.3, 0.3, 3), (0.75, 0.3, 0.3, 3), (0.9, 0.3, 0.3, 3), (0.4, 0.3, 0.3, 3),
                 (0.3, 0.3, 0.3, 4),
                 (0.5, None, 0.2, 1), (0.5, 0.2, None, 1)]
        answers = []
        for case in cases:
            out, err = _call(fn, *case)
            if err:
                return err + f" for fn{case}"
            answers.append(None if out is None else bool(out))
        if answers == [_within(*c) for c in cases]:
            print("correct: a change is within noise when |delta| <= 2 sqrt((std_a^2 + std_b^2) / n)")
            return None
        wrong = {
            "with an unknown std (one seed) the answer is None, not a guess":
                lambda d, a, b, n: _within(d, a or 0.0, b or 0.0, n),
            "compare the size of the change, |delta|: a drop is as much a change as a rise":
                lambda d, a, b, n: _within(d, a, b, n, size=lambda x: x),
            "'within noise' means within two standard errors of the difference, not one":
                lambda d, a, b, n: _within(d, a, b, n, k=1.0),
            "standard deviations do not add: the variance of a difference is the sum of the variances, so the "
            "standard error is sqrt((a^2 + b^2) / n)":
                lambda d, a, b, n: _within(d, a, b, n, combine=lambda x, y: x + y),
            "the steps' numbers are means over n seeds: the std of a mean is std / sqrt(n), so divide the "
            "variances by n": lambda d, a, b, n: _within(d, a, b, n, per_mean=False),
        }
        for message, candidate in wrong.items():
            if answers == [None if (v := candidate(*c)) is None else bool(v) for c in cases]:
                return message
        for case, answer in zip(cases, answers):
            if answer != _within(*case):
                return f"fn{case} = {answer!r}; expected {_within(*case)!r}"
        return None
    return _report(fn, body)
