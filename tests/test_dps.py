"""VE-DPS sampler (PaDIS-MRI Algorithm 1): posterior behaviour on an exact Gaussian prior, determinism, guards."""
import pytest
import torch
from deepinv.models import Denoiser
from deepinv.physics import MultiCoilMRI

from padis_plugin.errors import ConfigError, DataError
from padis_plugin.prior import PaDISDenoiser
from padis_plugin.solvers.diffpir import PaDISDiffPIR
from padis_plugin.solvers.aliases import make_edm_dps, make_padis_diffpir, make_padis_dps
from padis_plugin.solvers.dps import EDMDPS, PaDISDPS, SamplerDivergedError, VEDPS

from helpers import GaussianDenoiser, gaussian_posterior, toy_problem


pytestmark = pytest.mark.usefixtures("one_thread")


def test_gaussian_prior_posterior_mean_and_spread():
    """With the exact denoiser of a Gaussian prior, VE-DPS samples the posterior (K = 52 levels, L = 10).

    16 chains run as one batch (per-slice SSE keeps them independent). Measured (zeta = 0.3): squared error of
    the chain mean 2.8 against the Monte-Carlo expectation trace(Sigma_post)/16 = 3.0 (ratio 0.93), and a
    summed sample variance of 49.9 against trace(Sigma_post) = 48.0 (the default K = 104 gives 2.5 and 49.7;
    K = 52, L = 5 gives 57: too few iterations to forget the sigma_max = 10 start). The normalised DC step has a fixed length
    2 zeta ||A^T r|| / ||r||, so the final residual does not go to 0: it jitters at ~2.3 zeta here (measured
    0.69), adding ~2.4 zeta^2 of variance (zeta = 3 gave 70 instead of 48), hence zeta = 0.3 for this test.
    Tolerances: error ratio < 2 (a chi-square-like ratio with mean ~1) and variance within 20%.
    """
    s0, sn, B = 1.0, 0.01, 16
    y, physics = toy_problem(sn=sn)
    mean, cov = gaussian_posterior(y, physics, s0, sn)
    sampler = VEDPS(GaussianDenoiser(s0), steps=52, inner=10, zeta=0.3, progress=False)
    out = sampler(y.expand(B, *y.shape[1:]).contiguous(), physics(B), generator=torch.Generator().manual_seed(1))
    assert sampler.nfe == 52 * 10
    mc = cov.trace().item() / B
    err = (out.mean(0, keepdim=True) - mean).pow(2).sum().item()
    assert err < 2.0 * mc, (err, mc)
    spread = out.var(0).sum().item()
    assert 0.8 < spread / cov.trace().item() < 1.2, (spread, cov.trace().item())
    zero_filled = (physics().A_adjoint(y) - mean).pow(2).sum().item()
    assert err < 0.25 * zero_filled  # measured 0.12


def test_complex_noise_convention_halves_the_prior_variance():
    """Published convention: per-channel noise std 1/sqrt(2) halves the Langevin noise variance, so the
    null-space part of the samples has half the prior variance (measured spread 25.0 against 48.0)."""
    s0, sn, B = 1.0, 0.01, 16
    y, physics = toy_problem(sn=sn)
    _, cov = gaussian_posterior(y, physics, s0, sn)
    sampler = VEDPS(GaussianDenoiser(s0), steps=52, inner=10, zeta=0.3, noise_convention="complex", progress=False)
    out = sampler(y.expand(B, *y.shape[1:]).contiguous(), physics(B), generator=torch.Generator().manual_seed(1))
    assert out.var(0).sum().item() / cov.trace().item() < 0.7


def test_same_seed_same_output_and_batch_equals_single_runs():
    y, physics = toy_problem(C=2)
    y2, physics2 = toy_problem(C=2, seed=3)
    sampler = VEDPS(GaussianDenoiser(), steps=6, inner=2, progress=False)
    a = sampler(y, physics(), generator=torch.Generator().manual_seed(5))
    b = sampler(y, physics(), generator=torch.Generator().manual_seed(5))
    c = sampler(y, physics(), generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    # a batch of two different slices, one generator each, equals two separate runs
    batch_physics = MultiCoilMRI(mask=torch.cat([physics().mask, physics2().mask]),
                                 coil_maps=torch.cat([physics().coil_maps, physics2().coil_maps]), img_size=(2, 2, 8, 8))
    d = sampler(y2, physics2(), generator=torch.Generator().manual_seed(9))
    both = sampler(torch.cat([y, y2]), batch_physics,
                   generator=[torch.Generator().manual_seed(5), torch.Generator().manual_seed(9)])
    torch.testing.assert_close(both, torch.cat([a, d]), rtol=1e-5, atol=1e-6)


def test_zero_residual_skips_data_step_without_nan():
    """y = 0 and D = 0: A(D) = y exactly, SSE = 0 at every step; the DC step is skipped, not divided by 0."""
    y, physics = toy_problem()
    zero = lambda x, sigma: 0 * x  # noqa: E731
    sampler = VEDPS(zero, steps=5, inner=3, progress=False)
    out = sampler(torch.zeros_like(y), physics(), generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out).all() and sampler.nfe == 15


def test_non_finite_inputs_and_divergence():
    y, physics = toy_problem()
    sampler = VEDPS(GaussianDenoiser(), steps=3, inner=2, progress=False)
    bad = y.clone()
    bad[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(DataError):
        sampler(bad, physics())
    p = physics()
    p.update_parameters(coil_maps=p.coil_maps * float("inf"))
    with pytest.raises(DataError):
        sampler(y, p)

    def exploding(x, sigma):
        return x * float("inf") if sigma < 1 else x

    with pytest.raises(SamplerDivergedError, match=r"noise level 3/3"):
        VEDPS(exploding, steps=3, inner=2, sigma_max=10, sigma_min=0.1, progress=False)(y, physics())


def test_generator_reaches_a_random_denoiser():
    """All randomness, the denoiser's included, comes from the sampler's generator."""

    class RandomDenoiser(Denoiser):
        def forward(self, x, sigma, generator=None):
            return x + 0.01 * torch.randn(x.shape, generator=generator)

    y, physics = toy_problem()
    sampler = VEDPS(RandomDenoiser(), steps=3, inner=2, progress=False)
    runs = []
    for _ in range(2):
        torch.manual_seed(len(runs))  # different global RNG state: must not matter
        runs.append(sampler(y, physics(), generator=torch.Generator().manual_seed(0)))
    assert torch.equal(*runs)


def test_invalid_options():
    for kw in [dict(noise_convention="foo"), dict(skip_noise="x"), dict(inner=0), dict(steps=0), dict(zeta=-1)]:
        with pytest.raises(ConfigError):
            VEDPS(GaussianDenoiser(), **kw)


def test_factories_run_tiny_networks(tiny_checkpoints):
    padis_ckpt, edm_ckpt = tiny_checkpoints["padis"], tiny_checkpoints["edm"]
    y, physics = toy_problem(H=32, C=2)
    common = dict(steps=2, inner=2, progress=False)
    padis = make_padis_dps(dict(checkpoint=padis_ckpt, patch_size=16, pad=8, **common))
    assert isinstance(padis, PaDISDPS) and padis.denoiser.patch_size == 16 and padis.denoiser.pad == 8
    a = padis(y, physics(), generator=torch.Generator().manual_seed(0))
    b = padis(y, physics(), generator=torch.Generator().manual_seed(0))
    assert a.shape == (1, 2, 32, 32) and torch.equal(a, b) and padis.nfe == 4  # offsets follow the generator
    edm = make_edm_dps(dict(checkpoint=edm_ckpt, noise_convention="complex", **common))
    assert isinstance(edm, EDMDPS) and edm.skip_noise == "last"
    assert torch.isfinite(edm(y, physics(), generator=torch.Generator().manual_seed(0))).all()


def test_factory_rejects_unknown_parameters():
    with pytest.raises(ConfigError, match="allowed: .*zeta"):
        make_padis_dps({"checkpoint": "x", "zetta": 3})
    with pytest.raises(ConfigError, match="pad"):
        make_edm_dps({"pad": 64})


def test_diffpir_wrapper_is_deterministic_and_fits_the_data():
    """deepinv's DiffPIR on [0, 1] images, mapped to signed complex MRI data (measured residual 7% of ||y||)."""
    y, physics = toy_problem(H=16, C=2)
    sampler = PaDISDiffPIR(GaussianDenoiser(), iterations=20, sigma=0.01, progress=False)
    a = sampler(y, physics(), generator=torch.Generator().manual_seed(0))
    b = sampler(y, physics(), generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and sampler.nfe == 20
    assert (physics().A(a) - y).norm() < 0.15 * y.norm()


def test_too_short_schedule_warns():
    from padis_plugin.solvers.dps import ShortScheduleWarning

    with pytest.warns(ShortScheduleWarning, match="too short"):
        VEDPS(GaussianDenoiser(), steps=10, inner=3)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", ShortScheduleWarning)
        VEDPS(GaussianDenoiser(), steps=20, inner=5)


# -- fidelity options: score_from (Algorithm 1 line 13), pad_band (the published padded iterate) ----------------
def test_score_from_clean_uses_the_pre_noise_iterate():
    """One noiseless iteration (zeta = 0): x1 = x0 + (alpha/2) (D(x~) - ref) / sigma^2, ref = x~ (published code,
    default) or x0 (Algorithm 1, line 13)."""
    y, physics = toy_problem()
    sigma, k = 0.5, 0.8  # GaussianDenoiser(1): D = x / (1 + sigma^2) = 0.8 x
    x0 = physics().A_adjoint(y)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    x_noisy = x0 + sigma * eps
    for score_from, ref in (("noisy", x_noisy), ("clean", x0)):
        sampler = VEDPS(GaussianDenoiser(1.0), sigmas=[sigma], inner=1, zeta=0.0, score_from=score_from)
        out = sampler(y, physics(), generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(out, x0 + (sigma ** 2 / 4) * (k * x_noisy - ref) / sigma ** 2)
    with pytest.raises(ConfigError, match="score_from"):
        VEDPS(GaussianDenoiser(), score_from="x0")


class _Pointwise(torch.nn.Module):
    """Stand-in patch network D = x / 2 (pixel by pixel, so the tiling offset does not change D)."""

    def forward(self, x, sigma, pos=None):
        return 0.5 * x


class _CanvasSpy(PaDISDenoiser):
    def denoise_canvas(self, canvas, sigma, generator=None):
        self.seen.append(canvas.detach().clone())
        return super().denoise_canvas(canvas, sigma, generator=generator)


def test_evolving_pad_band_is_the_published_padded_iterate():
    """pad_band="evolving" equals the published loop (Algorithm 1) written out on the (H + 2M)^2 canvas: warm start
    A^H y zero-padded, x~ = x + sigma eps on the whole canvas, D = 0 on the band, s = (D - x~)/sigma^2, DC
    gradient w.r.t. the padded x, Langevin noise on the whole canvas; the denoiser sees the evolved band."""
    import math

    import torch.nn.functional as F

    H, M, zeta, sigmas, inner = 16, 8, 0.5, [2.0, 1.0], 2
    y, physics = toy_problem(H=H, C=2)
    den = _CanvasSpy(_Pointwise(), patch_size=8, pad=M)
    den.seen = []
    sampler = PaDISDPS(den, pad_band="evolving", sigmas=sigmas, inner=inner, zeta=zeta)
    out = sampler(y, physics(), generator=torch.Generator().manual_seed(0))

    g, crop = torch.Generator().manual_seed(0), (..., slice(M, M + H), slice(M, M + H))
    x, inputs = F.pad(physics().A_adjoint(y), (M,) * 4), []
    for i, sigma in enumerate(sigmas):
        for _ in range(inner):
            x = x.detach().requires_grad_(True)
            x_noisy = x + sigma * torch.randn(x.shape, generator=g)
            torch.randint(1, M + 1, (2,), generator=g)  # the tiling offset draw
            inputs.append(x_noisy.detach())
            d = F.pad(0.5 * x_noisy[crop], (M,) * 4)
            sse = (y - physics().A(d[crop])).pow(2).sum()
            (grad,) = torch.autograd.grad(sse, x)
            with torch.no_grad():
                x = x - zeta / sse.sqrt() * grad + (sigma ** 2 / 4) * (d - x_noisy) / sigma ** 2
                if i < len(sigmas) - 1:  # no noise on the last level
                    x = x + math.sqrt(sigma ** 2 / 2) * torch.randn(x.shape, generator=g)
    torch.testing.assert_close(torch.stack(den.seen), torch.stack(inputs))
    torch.testing.assert_close(out, x[crop])


def test_evolving_pad_band_with_per_slice_generators_and_the_factory(tiny_checkpoints):
    """Per-slice generators: a batch equals separate runs; the factory exposes pad_band (default fresh), and the
    evolving band changes the output of a network whose tiles mix the band into the image."""
    y, physics = toy_problem(H=32, C=2)
    y2, physics2 = toy_problem(H=32, C=2, seed=3)
    common = dict(checkpoint=tiny_checkpoints["padis"], steps=2, inner=2, progress=False)
    evolving = make_padis_dps({**common, "pad_band": "evolving"})
    assert evolving.pad_band == "evolving" and make_padis_dps(common).pad_band == "fresh"
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    a = evolving(y, physics(), generator=g(5))
    d = evolving(y2, physics2(), generator=g(9))
    batch = MultiCoilMRI(mask=torch.cat([physics().mask, physics2().mask]),
                         coil_maps=torch.cat([physics().coil_maps, physics2().coil_maps]), img_size=(2, 2, 32, 32))
    both = evolving(torch.cat([y, y2]), batch, generator=[g(5), g(9)])
    torch.testing.assert_close(both, torch.cat([a, d]), rtol=1e-5, atol=1e-6)
    assert a.shape == (1, 2, 32, 32) and torch.equal(a, evolving(y, physics(), generator=g(5)))
    assert not torch.allclose(a, make_padis_dps(common)(y, physics(), generator=g(5)))
    with pytest.raises(ConfigError, match="pad_band"):
        make_padis_dps({**common, "pad_band": "frozen"})
    with pytest.raises(ConfigError, match="patch denoiser"):
        PaDISDPS(GaussianDenoiser(), pad_band="evolving")


def test_factories_take_score_from_and_edm_rejects_patch_settings(tiny_checkpoints):
    common = dict(steps=2, inner=2, progress=False, score_from="clean")
    assert make_padis_dps(dict(checkpoint=tiny_checkpoints["padis"], **common)).score_from == "clean"
    assert make_edm_dps(dict(checkpoint=tiny_checkpoints["edm"], **common)).score_from == "clean"
    for key in ("max_batch", "patch_size", "pad"):
        with pytest.raises(ConfigError, match=f"edm-dps.*{key} is a patch setting"):
            make_edm_dps({"checkpoint": tiny_checkpoints["edm"], key: 16})


def test_diffpir_factory_keeps_the_checkpoint_patch_settings(tiny_checkpoints):
    """padis-diffpir samples with the checkpoint's own P and M (tiny checkpoint: 16 / 16), as padis-dps does."""


    den = make_padis_diffpir({"checkpoint": tiny_checkpoints["padis"], "progress": False}).denoiser
    assert (den.patch_size, den.pad, den.max_batch) == (16, 16, None)
    den = make_padis_diffpir({"checkpoint": tiny_checkpoints["padis"], "patch_size": 8, "pad": 4,
                              "max_batch": 3}).denoiser
    assert (den.patch_size, den.pad, den.max_batch) == (8, 4, 3)
