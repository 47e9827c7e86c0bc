"""DDS and DAPS-exact: reductions to known samplers, data consistency, posterior behaviour on an exact Gaussian
prior (the toy posterior of the VE-DPS tests), and DAPS-exact against DAPS's Langevin inner loop."""
import math

import pytest
import torch
from deepinv.physics import MultiCoilMRI

from padis_plugin.errors import ConfigError, DataError
from padis_plugin.prior.schedules import edm_sigmas
from padis_plugin.solvers.aliases import make_edm_daps, make_edm_dds, make_padis_daps, make_padis_dds
from padis_plugin.solvers.daps import DAPSExact
from padis_plugin.solvers.noise_level import kspace_noise_level
from padis_plugin.solvers.dds import DDS
from helpers import GaussianDenoiser, gaussian_posterior, toy_problem

pytestmark = pytest.mark.usefixtures("one_thread")


def _random_coil_problem(H=16, C=8, seed=0):
    """Well-conditioned noiseless problem: random coil maps, every 4th column plus 4 central ones sampled."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.randn(1, C, H, H, dtype=torch.complex64, generator=g) * 0.7
    mask = torch.zeros(1, 1, H, H)
    mask[..., ::4] = 1
    mask[..., H // 2 - 2:H // 2 + 2] = 1
    physics = MultiCoilMRI(mask=mask, coil_maps=maps, img_size=(1, 2, H, H))
    x = torch.randn(1, 2, H, H, generator=g)
    return physics.A(x), physics


def test_dds_without_cg_and_eta_zero_is_deterministic_ddim_on_the_prior():
    """m = 0, eta = 0: x_{i+1} = x0 + sigma_{i+1} (x - x0)/sigma_i (DDIM = Euler on the probability-flow ODE),
    the data never enter, and no fresh noise is drawn after the start."""
    y, physics = toy_problem(H=8, C=2)
    den = GaussianDenoiser(1.0)
    sigmas = edm_sigmas(8, 10.0, 0.01)
    out = DDS(den, sigmas=sigmas, eta=0.0, cg_iters=0)(y, physics(), generator=torch.Generator().manual_seed(0))
    x = sigmas[0].item() * torch.randn(y.shape[0], 2, 8, 8, generator=torch.Generator().manual_seed(0))
    s = sigmas.tolist()
    for i in range(len(s)):
        x0 = den(x, s[i])
        if i == len(s) - 1:
            break
        x = x0 + s[i + 1] * (x - x0) / s[i]
    torch.testing.assert_close(out, x0, rtol=1e-5, atol=1e-6)
    other = DDS(den, sigmas=sigmas, eta=0.0, cg_iters=0)(2 * y, physics(), generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, other)  # the prior alone


def test_dds_noiseless_projection_matches_the_sampled_lines():
    y, physics = _random_coil_problem()
    dds = DDS(GaussianDenoiser(1.0), steps=5, data_consistency="projection", cg_iters=100)
    out = dds(y, physics, generator=torch.Generator().manual_seed(0))
    assert (physics.A(out) - y).abs().max() < 1e-5
    assert dds.nfe == 5


def test_dds_approaches_the_posterior_mean_on_a_gaussian_prior():
    """With the exact denoiser of N(0, I), the mean of 16 DDS chains is close to the posterior mean (measured
    squared error 2.2 against 23.0 for A^H y). DDS is not an exact posterior sampler: its spread is 33 against
    the posterior's 48 (eta 0.85), so only the mean is checked."""
    s0, sn, B = 1.0, 0.01, 16
    y, physics = toy_problem(sn=sn)
    mean, _ = gaussian_posterior(y, physics, s0, sn)
    out = DDS(GaussianDenoiser(s0), steps=50, gamma=1.0, cg_iters=5)(
        y.expand(B, *y.shape[1:]).contiguous(), physics(B), generator=torch.Generator().manual_seed(0))
    err = (out.mean(0, keepdim=True) - mean).pow(2).sum().item()
    zero_filled = (physics().A_adjoint(y) - mean).pow(2).sum().item()
    assert err < 0.25 * zero_filled, (err, zero_filled)


def _daps_toy(sampler_factory, B=32):
    s0, sn = 1.0, 0.01
    y, physics = toy_problem(sn=sn)
    mean, cov = gaussian_posterior(y, physics, s0, sn)
    out = sampler_factory()(y.expand(B, *y.shape[1:]).contiguous(), physics(B),
                             generator=torch.Generator().manual_seed(1))
    err = (out.mean(0, keepdim=True) - mean).pow(2).sum().item()
    return err, cov.trace().item() / B, out.var(0).sum().item() / cov.trace().item()


def test_daps_exact_samples_the_gaussian_posterior():
    """Mean within the Monte-Carlo error (squared error < 2 trace(Sigma)/B) and spread within 20%."""
    err, mc, spread = _daps_toy(lambda: DAPSExact(GaussianDenoiser(1.0), steps=40, tau=0.01, cg_iters=30))
    assert err < 2.0 * mc, (err, mc)
    assert 0.8 < spread < 1.2, spread


class LangevinDAPS(DAPSExact):
    """DAPS with its published kind of inner loop: Langevin steps on -log p(x0 | x0_hat, y) instead of the exact draw."""

    def __init__(self, *a, langevin_steps=400, **kw):
        super().__init__(*a, **kw)
        self.langevin_steps = langevin_steps

    def forward(self, y, physics, generator=None, x_init=None, **kwargs):
        x_adj, _, denoise = self._start(y, physics, generator, None)
        tau = float(self.tau)
        s = self.sigmas.tolist()
        x = s[0] * self.noise(x_adj, generator)
        for i in range(self.steps):
            x0_hat = denoise(x, s[i])
            x0 = x0_hat.clone()
            lr = 0.25 / (1 / s[i] ** 2 + 1 / tau ** 2)  # stable step for the Gaussian's largest curvature
            for _ in range(self.langevin_steps):
                grad = (x0 - x0_hat) / s[i] ** 2 + physics.A_adjoint(physics.A(x0) - y) / tau ** 2
                x0 = x0 - lr * grad + math.sqrt(2 * lr) * self.noise(x0, generator)
            if i == self.steps - 1:
                return x0
            x = x0 + s[i + 1] * self.noise(x0, generator)


@pytest.mark.slow
def test_daps_exact_agrees_with_the_langevin_inner_loop():
    """The design check: exact Gaussian draws and 1000-step Langevin chains per level give the same statistics
    (measured spread 0.89 vs 0.85 of the posterior trace; both means within the Monte-Carlo error). The noise
    range is kept small (0.5 -> 0.05) so that Langevin mixes in every direction at every level: at sigma = 10 its
    condition number sigma^2/tau^2 would need ~10^5 steps."""
    kw = dict(sigmas=edm_sigmas(12, 0.5, 0.05), tau=0.05)
    err_e, mc, spread_e = _daps_toy(lambda: DAPSExact(GaussianDenoiser(1.0), cg_iters=40, **kw))
    err_l, _, spread_l = _daps_toy(lambda: LangevinDAPS(GaussianDenoiser(1.0), langevin_steps=1000, **kw))
    assert err_e < 2.0 * mc and err_l < 2.0 * mc, (err_e, err_l, mc)
    assert abs(spread_e - spread_l) < 0.2 * spread_l, (spread_e, spread_l)


def test_kspace_noise_level_recovers_the_simulated_noise():
    H, tau = 64, 0.02
    g = torch.Generator().manual_seed(0)
    physics = MultiCoilMRI(mask=torch.ones(1, 1, H, H), coil_maps=torch.ones(1, 2, H, H, dtype=torch.complex64),
                           img_size=(1, 2, H, H))
    x = torch.zeros(1, 2, H, H)
    x[..., 24:40, 24:40] = 1.0  # smooth-ish object: little energy in the corners
    y = physics.A(x) + tau * torch.randn(1, 2, 2, H, H, generator=g)
    est = float(kspace_noise_level(y, physics))
    assert abs(est - tau) < 0.15 * tau, est


def test_kspace_noise_level_without_sampled_corners_uses_the_outermost_entries():
    """1-D lines that miss the outer column bands (high R on a small grid): the estimate falls back to the
    outermost sampled entries instead of failing; a mask with almost nothing sampled is a clear DataError."""
    H, tau = 64, 0.02
    mask = torch.zeros(1, 1, H, H)
    mask[..., H // 2 - 6: H // 2 + 6] = 1.0  # only central lines: no sampled entry in the outer column bands
    physics = MultiCoilMRI(mask=mask, coil_maps=torch.ones(1, 2, H, H, dtype=torch.complex64), img_size=(1, 2, H, H))
    grid = torch.arange(H) - H / 2
    x = torch.zeros(1, 2, H, H)
    x[:, 0] = torch.exp(-(grid[:, None] ** 2 + grid[None, :] ** 2) / 60.0)  # smooth: a fast-decaying spectrum
    y = physics.A(x) + tau * torch.randn(1, 2, 2, H, H, generator=torch.Generator().manual_seed(0)) * mask.unsqueeze(2)
    est = float(kspace_noise_level(y, physics))
    assert abs(est - tau) < 0.2 * tau, est
    mask = torch.zeros(1, 1, H, H)
    mask[..., 0, :3] = 1.0  # 3 entries x 2 coils
    physics = MultiCoilMRI(mask=mask, coil_maps=torch.ones(1, 2, H, H, dtype=torch.complex64), img_size=(1, 2, H, H))
    with pytest.raises(DataError, match="fewer than 16 sampled"):
        kspace_noise_level(physics.A(x), physics)


def test_same_generator_same_output_and_options_checked():
    y, physics = toy_problem(C=2)
    for make in (lambda: DDS(GaussianDenoiser(), steps=6), lambda: DAPSExact(GaussianDenoiser(), steps=6, tau=0.01)):
        a = make()(y, physics(), generator=torch.Generator().manual_seed(5))
        b = make()(y, physics(), generator=torch.Generator().manual_seed(5))
        c = make()(y, physics(), generator=torch.Generator().manual_seed(6))
        assert torch.equal(a, b) and not torch.equal(a, c)
    for bad in (dict(eta=1.5), dict(start="x"), dict(data_consistency="y"), dict(cg_iters=-1)):
        with pytest.raises(ConfigError):
            DDS(GaussianDenoiser(), **bad)
    for bad in (dict(tau=-1.0), dict(tau="x"), dict(ode_steps=0), dict(tau_scale=0.0), dict(tau_scale=float("nan"))):
        with pytest.raises(ConfigError):
            DAPSExact(GaussianDenoiser(), **bad)
    with pytest.raises(DataError):
        DAPSExact(GaussianDenoiser(), steps=2)(torch.zeros_like(y), physics())  # noiseless: tau 'auto' is 0


def test_daps_tau_scale_is_a_larger_tau():
    # tau_scale only rescales the noise level the sampler uses: scale 2 on tau 0.01 is tau 0.02, draw for draw
    y, physics = toy_problem(C=2)
    run = lambda **kw: DAPSExact(GaussianDenoiser(), steps=4, **kw)(y, physics(), generator=torch.Generator().manual_seed(3))
    assert torch.allclose(run(tau=0.01, tau_scale=2.0), run(tau=0.02), atol=1e-6)
    daps = DAPSExact(GaussianDenoiser(), steps=2, tau=0.01, tau_scale=0.5)
    daps(y, physics(), generator=torch.Generator().manual_seed(3))
    assert daps.tau_used[0] == pytest.approx(0.005)  # what the bench records is the tau in use


def test_dds_noise_aware_weight_follows_sigma_and_is_capped_by_gamma():
    """tau given: gamma_i = min(gamma, sigma_i^2 / (tau_scale tau)^2). A tau so small that the cap never binds
    is DDS with the constant gamma, draw for draw; a larger one weakens only the low-sigma levels."""
    y, physics = toy_problem(C=2)
    sigmas = edm_sigmas(6, 10.0, 0.01)
    run = lambda **kw: DDS(GaussianDenoiser(), sigmas=sigmas, gamma=5.0, **kw)(
        y, physics(), generator=torch.Generator().manual_seed(2))
    assert torch.equal(run(tau=1e-6), run())
    assert not torch.allclose(run(tau=0.05), run())
    assert torch.allclose(run(tau=0.01, tau_scale=5.0), run(tau=0.05), atol=1e-6)
    weights = DDS(GaussianDenoiser(), sigmas=sigmas, gamma=5.0, tau=0.05)._data_weights(y, physics(), sigmas.tolist())
    expect = torch.clamp(sigmas ** 2 / 0.05 ** 2, max=5.0).float()
    torch.testing.assert_close(torch.stack(weights)[:, 0], expect)
    assert weights[0].item() == 5.0 and weights[-1].item() < 5.0
    for bad in (dict(tau=-1.0), dict(tau="x"), dict(tau=True), dict(tau=0.01, tau_scale=0.0),
                dict(tau=0.01, data_consistency="projection")):
        with pytest.raises(ConfigError):
            DDS(GaussianDenoiser(), **bad)
    with pytest.raises(DataError, match="DDS"):
        DDS(GaussianDenoiser(), steps=2, tau="auto")(torch.zeros_like(y), physics())  # noiseless: tau 0


def test_daps_ode_steps_count_network_calls():
    y, physics = toy_problem(C=2)
    daps = DAPSExact(GaussianDenoiser(), steps=4, ode_steps=3, tau=0.01)
    daps(y, physics(), generator=torch.Generator().manual_seed(0))
    assert daps.nfe == 12


def test_factories_with_tiny_networks_and_typed_params(tiny_checkpoints):
    y, physics = toy_problem(H=32, C=2)
    for make, kind in ((make_padis_dds, "padis"), (make_edm_dds, "edm"), (make_padis_daps, "padis"),
                       (make_edm_daps, "edm")):
        s = make({"checkpoint": tiny_checkpoints[kind], "steps": 3, **({"tau": 0.01} if "daps" in make.__name__ else {})})
        out = s(y, physics(), generator=torch.Generator().manual_seed(0))
        assert out.shape == (1, 2, 32, 32) and torch.isfinite(out).all() and s.nfe == 3
    with pytest.raises(ConfigError, match="steps must be an integer"):
        make_padis_dds({"steps": "abc"})
    with pytest.raises(ConfigError, match="eta must be a number"):
        make_edm_dds({"eta": [1, 2]})
    with pytest.raises(ConfigError, match="unknown parameter"):
        make_padis_daps({"zeta": 1})


def test_kspace_helpers_refuse_data_off_the_cartesian_grid():
    """The noise estimate and the HFS low band need k-space positions: on a physics whose y is not gridded
    multi-coil k-space (a single-coil image-domain operator here) they fail with a message naming the solver."""
    import deepinv as dinv

    from padis_plugin.solvers.hfs_band import high_band_start

    physics = dinv.physics.Denoising()
    y = torch.zeros(1, 2, 16, 16)
    with pytest.raises(DataError, match=r"DAPS: estimating the noise level .* Cartesian grid.*got y \(1, 2, 16, 16\)"):
        kspace_noise_level(y, physics)
    with pytest.raises(DataError, match=r"hfs-pc: the HFS low band .* Denoising"):
        high_band_start(y, physics, 4, 1.0, torch.randn_like, "hfs-pc")
