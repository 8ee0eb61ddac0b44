import math

import pytest
import torch

from ldae_lite.noise import SINGLE_SIGMA, NoiseSchedule, gamma2_table, share_below, sigma_table


def test_ddpm_schedule_matches_dit_constants():
    g2 = gamma2_table("ddpm_linear_beta")
    assert g2.shape == (1000,)
    assert g2[0] == pytest.approx(1 - 1e-4)
    assert float(g2[250]) == pytest.approx(0.521, abs=1e-3)
    assert float(g2[500]) == pytest.approx(0.078, abs=1e-3)
    assert share_below(g2, 0.5) == pytest.approx(0.741, abs=1e-3)  # Fig. 3: most steps are very noisy


@pytest.mark.parametrize("steps", [1, 5, 100, 1000])
def test_linear_gamma2_endpoints(steps):
    g2 = gamma2_table("linear_gamma2", steps)
    assert g2[0] < 1 and g2[-1] == 0  # 1 > gamma^2 >= 0
    assert torch.allclose(g2[:-1] - g2[1:], torch.full((steps - 1,), 1 / steps, dtype=torch.float64))


def test_linear_sigma_endpoints_and_probe_t():
    s = sigma_table("linear_sigma", input_scaling=False)
    assert s[0] == 0 and s[-1] < math.sqrt(2) and s[-1] == pytest.approx(math.sqrt(2), abs=2e-3)
    assert float(s[10]) == pytest.approx(0.0141, abs=1e-4)


def test_variance_preserving_and_unscaled():
    sched = NoiseSchedule("linear_gamma2", input_scaling=True)
    assert torch.allclose(sched.gammas() ** 2 + sched.sigmas() ** 2, torch.ones(1000, dtype=torch.float64))
    unscaled = NoiseSchedule("linear_sigma", input_scaling=False)
    assert torch.all(unscaled.gammas() == 1)


def test_loss_weights():
    t = torch.tensor([0, 500, 999])
    vp = NoiseSchedule("linear_gamma2")
    assert torch.equal(vp.loss_weight("none", t), torch.ones(3))
    assert torch.allclose(vp.loss_weight("gamma2", t), vp.gamma(t) ** 2)
    ve = NoiseSchedule("linear_sigma", input_scaling=False)
    w = ve.loss_weight("inv_1_plus_sigma2", t)
    assert w[0] == 1 and w[-1] == pytest.approx(1 / 3, abs=2e-3)  # 1 / (1 + 2)
    with pytest.raises(ValueError, match="loss_weight='snr'"):
        vp.loss_weight("snr", t)


def test_add_noise_is_eq1():
    sched = NoiseSchedule("ddpm_linear_beta")
    z0, eps = torch.randn(4, 16, 8), torch.randn(4, 16, 8)
    t = torch.tensor([0, 10, 500, 999])
    zt = sched.add_noise(z0, t, eps)
    for i in range(4):
        assert torch.allclose(zt[i], sched.gamma(t[i:i + 1]) * z0[i] + sched.sigma(t[i:i + 1]) * eps[i])


def test_single_level_and_t_sampling():
    sched = NoiseSchedule("linear_sigma", input_scaling=False, single_sigma=SINGLE_SIGMA)
    t = sched.sample_t(64, torch.Generator().manual_seed(0))
    assert torch.all(t == t[0]) and float(sched.sigma(t[:1])) == pytest.approx(SINGLE_SIGMA, abs=2e-3)
    multi = NoiseSchedule("linear_gamma2").sample_t(10000, torch.Generator().manual_seed(0))
    assert multi.min() >= 0 and multi.max() <= 999 and multi.float().mean() == pytest.approx(499.5, abs=15)


def test_bad_schedule_errors():
    with pytest.raises(ValueError, match="schedule='cosine'"):
        NoiseSchedule("cosine")
    with pytest.raises(ValueError, match="input_scaling=False"):
        NoiseSchedule("linear_sigma", input_scaling=True)
