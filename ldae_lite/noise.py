"""The corruption process: noise schedules, t sampling, loss weights and adding noise.

arXiv 2401.14404 eq. (1): z_t = gamma_t * z_0 + sigma_t * eps, eps ~ N(0, I).

Three schedules appear along the paper's trajectory (T = 1000 discrete steps, t in {0, ..., T-1}):

* ``ddpm_linear_beta``  DiT/DDPM: beta_t = linspace(1e-4, 0.02, T), gamma_t^2 = prod_{s<=t} (1 - beta_s),
                        sigma_t^2 = 1 - gamma_t^2. Spends most steps on very noisy inputs (Fig. 3).
* ``linear_gamma2``     Sec. 4.1: gamma_t^2 decays linearly, 1 > gamma_t^2 >= 0. We discretise it as
                        gamma_t^2 = 1 - (t + 1) / T, so t = 0 is almost clean and t = T - 1 is pure noise.
* ``linear_sigma``      Sec. 4.3, after input scaling is removed (gamma_t = 1): sigma_t = sqrt(2) * t / T,
                        i.e. sigma in [0, sqrt(2)); t = 10 gives sigma ~ 0.014 (the probe's "fixed t").

With ``input_scaling=False`` gamma_t is 1 whatever the schedule (eq. z_t = z_0 + sigma_t eps).
The network never imports this module: only :mod:`ldae_lite.objectives` adds noise to a batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

T = 1000
SCHEDULES = ("ddpm_linear_beta", "linear_gamma2", "linear_sigma")
LOSS_WEIGHTS = ("none", "gamma2", "inv_1_plus_sigma2")
SINGLE_SIGMA = math.sqrt(1.0 / 3.0)  # Sec. 4.3 "single noise level"; docs/paper.md §3.7 explains the sqrt
# The single level of each single-level setting of Recipe.noise_levels. The extracted text of Sec. 4.3 reads
# "sigma = 1/3" with a glyph dropped, most likely a square root; "single_1/3" is the other reading.
SINGLE_SIGMAS = {"single": SINGLE_SIGMA, "single_1/3": 1.0 / 3.0}
NOISE_LEVELS = ("multi", *SINGLE_SIGMAS)  # "multi": t uniform over all T steps (DiT)


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {allowed}")


def gamma2_table(kind: str, steps: int = T) -> torch.Tensor:
    """gamma_t^2 for t = 0..T-1 (float64, shape (T,)) for the two variance-preserving schedules."""
    _check("schedule", kind, SCHEDULES)
    t = torch.arange(steps, dtype=torch.float64)
    if kind == "ddpm_linear_beta":
        betas = torch.linspace(1e-4, 0.02, steps, dtype=torch.float64)  # DiT's create_diffusion defaults
        return torch.cumprod(1.0 - betas, dim=0)
    if kind == "linear_gamma2":
        return 1.0 - (t + 1.0) / steps
    # linear_sigma is defined on sigma; express it as gamma^2 = 1 - sigma^2 only where that is >= 0
    raise ValueError("schedule 'linear_sigma' is defined on sigma (gamma = 1); use sigma_table")


def sigma_table(kind: str, input_scaling: bool, steps: int = T) -> torch.Tensor:
    """sigma_t for t = 0..T-1 (float64, shape (T,))."""
    _check("schedule", kind, SCHEDULES)
    if kind == "linear_sigma":
        return math.sqrt(2.0) * torch.arange(steps, dtype=torch.float64) / steps
    return torch.sqrt(1.0 - gamma2_table(kind, steps))


@dataclass(frozen=True)
class NoiseSchedule:
    """sigma_t and gamma_t for one schedule, plus how t is drawn and how the loss is weighted.

    kind: one of SCHEDULES. input_scaling: whether the clean signal is scaled by gamma_t (eq. 1) or
    left alone (gamma_t = 1, Sec. 4.3). single_sigma: if set, every sample uses this one noise level
    (Sec. 4.3 "single noise level") at the t whose sigma is closest to it.
    """

    kind: str = "ddpm_linear_beta"
    input_scaling: bool = True
    single_sigma: float | None = None
    steps: int = T

    def __post_init__(self):
        _check("schedule", self.kind, SCHEDULES)
        if self.kind == "linear_sigma" and self.input_scaling:
            raise ValueError(
                "schedule='linear_sigma' reaches sigma = sqrt(2) > 1, so it needs input_scaling=False "
                "(gamma_t = 1); with input_scaling=True use 'ddpm_linear_beta' or 'linear_gamma2'"
            )

    # -- tables -------------------------------------------------------------------------------
    def sigmas(self) -> torch.Tensor:
        return sigma_table(self.kind, self.input_scaling, self.steps)

    def gammas(self) -> torch.Tensor:
        if not self.input_scaling:
            return torch.ones(self.steps, dtype=torch.float64)
        return torch.sqrt(1.0 - self.sigmas() ** 2)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """sigma_t for integer t of any shape, as float32 on t's device."""
        return self.sigmas().to(t.device, torch.float32)[t.long()]

    def gamma(self, t: torch.Tensor) -> torch.Tensor:
        return self.gammas().to(t.device, torch.float32)[t.long()]

    def t_for_sigma(self, sigma: float) -> int:
        """The step whose sigma is closest to ``sigma``."""
        return int(torch.argmin((self.sigmas() - sigma).abs()))

    # -- sampling t and weighting the loss ------------------------------------------------------
    def sample_t(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """(n,) integer steps: uniform over {0..T-1} (DiT), or the single level's step."""
        device = device if device is not None else (generator.device if generator is not None else "cpu")
        if self.single_sigma is not None:
            return torch.full((n,), self.t_for_sigma(self.single_sigma), device=device, dtype=torch.long)
        return torch.randint(0, self.steps, (n,), generator=generator, device=device)

    def loss_weight(self, kind: str, t: torch.Tensor) -> torch.Tensor:
        """lambda_t per sample: 'none' -> 1; 'gamma2' -> gamma_t^2 (Sec. 4.3, eq. 3);
        'inv_1_plus_sigma2' -> 1 / (1 + sigma_t^2) (Sec. 4.3, after removing input scaling)."""
        _check("loss_weight", kind, LOSS_WEIGHTS)
        if kind == "none":
            return torch.ones(t.shape, device=t.device)
        if kind == "gamma2":
            return self.gamma(t) ** 2
        return 1.0 / (1.0 + self.sigma(t) ** 2)

    def add_noise(self, z0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """eq. (1): z_t = gamma_t z_0 + sigma_t eps, broadcasting t (N,) over z0 (N, ...)."""
        shape = (-1,) + (1,) * (z0.ndim - 1)
        return self.gamma(t).view(shape) * z0 + self.sigma(t).view(shape) * eps


def share_below(gamma2: torch.Tensor, level: float) -> float:
    """Fraction of steps whose gamma^2 is below ``level`` (Fig. 3: DDPM spends ~74% below 0.5)."""
    return float((gamma2 < level).double().mean())
