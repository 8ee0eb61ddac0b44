"""Checks for the exercises of notebook 04 (the noise schedule, arXiv 2401.14404 Sec. 4.1, eq. 1).

Each ``check_*`` calls the student's function on small inputs, compares it with the package's own version
(:mod:`ldae_lite.noise`), prints one line (``correct: ...``, ``not solved yet: ...`` or
``not quite: <what is wrong>``) and returns a true Verdict only when it is right. It never raises, so a notebook
runs top to bottom with the exercise left open.
"""

from __future__ import annotations

import torch

from ..noise import NoiseSchedule, gamma2_table
from ._check import Verdict, _call, _report


def _as_tensor(out, shape, what: str):
    """(tensor float64, None) when ``out`` converts to a tensor of ``shape``, else (None, message)."""
    try:
        t = torch.as_tensor(out).double()
    except Exception:  # noqa: BLE001
        return None, f"{what} should be a tensor (or array), got {type(out).__name__}"
    if tuple(t.shape) != tuple(shape):
        return None, f"{what} has shape {tuple(t.shape)}; expected {tuple(shape)}"
    return t, None


def _close(a, b, tol=1e-6) -> bool:
    return torch.allclose(a.double(), b.double(), rtol=1e-5, atol=tol)


# --------------------------------------------------------------------------------------------------
# exercise 1: the linear-gamma^2 schedule
# --------------------------------------------------------------------------------------------------
def check_linear_gamma2(fn) -> Verdict:
    """fn(T) -> (T,) gamma_t^2 for t = 0..T-1, decaying linearly with 1 > gamma^2 >= 0 (Sec. 4.1).

    Compared with ``noise.gamma2_table('linear_gamma2', T)``, i.e. gamma_t^2 = 1 - (t + 1) / T.
    """
    def body():
        for steps in (1000, 10):
            out, err = _call(fn, steps)
            if err:
                return err
            g2, err = _as_tensor(out, (steps,), f"fn({steps})")
            if err:
                return err
            expected = gamma2_table("linear_gamma2", steps)
            if _close(g2, expected):
                continue
            t = torch.arange(steps, dtype=torch.float64)
            if _close(g2, 1 - t / steps):
                return (f"off by one: your gamma^2 starts at {g2[0]:.3f} at t = 0 (a perfectly clean input) and "
                        f"ends at {g2[-1]:.3f}, so the last step is never pure noise. With t = 0..T-1, use "
                        "1 - (t + 1) / T: 1 > gamma^2 >= 0 as the paper writes, the last step all noise")
            if _close(g2, 1 - expected):
                return "your gamma^2 grows with t; the signal share must decay: gamma^2 goes from ~1 to 0"
            if _close(g2 ** 2, expected):
                return "you returned gamma_t, the square root; the schedule is linear in gamma_t^2 itself"
            if (g2[1:] > g2[:-1] + 1e-12).any():
                return "your gamma^2 is not decreasing in t"
            worst = int((g2 - expected).abs().argmax())
            return (f"fn({steps})[{worst}] = {g2[worst]:.4f}, expected {expected[worst]:.4f} "
                    f"(gamma_t^2 = 1 - (t + 1) / T)")
        return None

    return _report(fn, body, "gamma_t^2 = 1 - (t + 1) / T, the same table as noise.gamma2_table('linear_gamma2')")


# --------------------------------------------------------------------------------------------------
# exercise 2: adding noise, eq. (1)
# --------------------------------------------------------------------------------------------------
def check_add_noise(fn) -> Verdict:
    """fn(z0 (N, L, d), t (N,) long, eps (N, L, d), gamma2 (T,)) -> z_t = gamma_t z0 + sigma_t eps (eq. 1),
    gamma_t = sqrt(gamma2[t]), sigma_t = sqrt(1 - gamma2[t]); t indexes per sample and broadcasts."""
    gen = torch.Generator().manual_seed(0)
    z0 = torch.randn(6, 4, 3, generator=gen)
    eps = torch.randn(6, 4, 3, generator=gen)
    t = torch.tensor([0, 10, 250, 500, 750, 999])

    def body():
        for kind in ("linear_gamma2", "ddpm_linear_beta"):
            g2 = gamma2_table(kind).float()
            out, err = _call(fn, z0.clone(), t.clone(), eps.clone(), g2.clone())
            if err:
                return err + " (hint: gamma2[t] has shape (N,); reshape it to (N, 1, 1) to broadcast over (N, L, d))"
            zt, err = _as_tensor(out, z0.shape, "z_t")
            if err:
                return err
            expected = NoiseSchedule(kind).add_noise(z0, t, eps)
            if _close(zt, expected, 1e-5):
                continue
            g = g2[t].view(-1, 1, 1)
            if _close(zt, g * z0 + (1 - g) * eps, 1e-5):
                return "you scaled by gamma_t^2 and 1 - gamma_t^2; eq. (1) uses their square roots gamma_t, sigma_t"
            if _close(zt, g.sqrt() * z0 + (1 - g.sqrt()) * eps, 1e-5):
                return ("sigma_t = sqrt(1 - gamma_t^2), not 1 - gamma_t: the schedule preserves variance, "
                        "gamma_t^2 + sigma_t^2 = 1")
            if _close(zt, (1 - g).sqrt() * z0 + g.sqrt() * eps, 1e-5):
                return "gamma_t multiplies the clean z0 and sigma_t the noise eps, not the other way round"
            worst = int((zt - expected).abs().flatten(1).amax(1).argmax())
            return (f"with the {kind} table, sample {worst} (t = {int(t[worst])}) differs from "
                    f"gamma_t z0 + sigma_t eps by up to {(zt - expected)[worst].abs().max():.4f}")
        return None

    return _report(fn, body, "z_t = gamma_t z0 + sigma_t eps for both schedules, as NoiseSchedule.add_noise")
