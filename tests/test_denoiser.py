"""Denoisers: preconditioning, sigma forms, determinism, checkpoints, paper sizes, use inside deepinv samplers."""
import deepinv as dinv
import pytest
import torch

from padis_plugin.errors import CheckpointError, ConfigError
from padis_plugin.prior import EDMDenoiser, EDMPrecond, PaDISDenoiser, build_unet, count_parameters, load_prior
from padis_plugin.prior.denoiser import BUNDLED_CHECKPOINTS


def tiny_padis(**kw):
    torch.manual_seed(0)
    return PaDISDenoiser(EDMPrecond(build_unet("padis-tiny")), **{"patch_size": 8, "pad": 4, **kw})


def tiny_edm(**kw):
    torch.manual_seed(0)
    return EDMDenoiser(EDMPrecond(build_unet("edm-tiny")), **kw)


def test_edm_precond_coefficients():
    class Probe(torch.nn.Module):
        def forward(self, x, c_noise):
            self.x, self.c_noise = x, c_noise
            return torch.ones(x.shape[0], 2, *x.shape[2:])

    probe, sd = Probe(), 0.5
    pre = EDMPrecond(probe, sigma_data=sd)
    x, pos, sigma = torch.randn(2, 2, 4, 4), torch.randn(2, 2, 4, 4), torch.tensor([0.1, 2.0])
    D = pre(x, sigma, pos)
    s = sigma.view(-1, 1, 1, 1)
    assert torch.allclose(probe.x[:, :2], x / (s**2 + sd**2).sqrt())
    assert torch.equal(probe.x[:, 2:], pos)  # positions are not scaled
    assert torch.allclose(probe.c_noise, sigma.log() / 4)
    assert torch.allclose(D, sd**2 / (s**2 + sd**2) * x + s * sd / (s**2 + sd**2).sqrt())


@pytest.mark.parametrize("make", [tiny_padis, tiny_edm])
def test_sigma_forms_keep_shape(make):
    x, den = torch.randn(2, 2, 10, 13), make(seed=0)
    with torch.no_grad():
        for sigma in (0.3, torch.tensor(0.3), torch.tensor([0.3, 1.5])):
            assert den(x, sigma).shape == x.shape
        assert torch.allclose(den(x, 0.0), x, atol=1e-6)  # sigma -> 0 limit, no NaN from ln(0)


def test_same_seed_same_output_and_chunking():
    x = torch.randn(2, 2, 12, 10)
    with torch.no_grad():
        a = tiny_padis(seed=5)(x, 0.5)
        b = tiny_padis(seed=5)(x, 0.5)
        c = tiny_padis(seed=6)(x, 0.5)
        d = tiny_padis(seed=5, max_batch=3)(x, 0.5)
        e = tiny_padis()(x, 0.5, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.allclose(a, d, atol=1e-5) and torch.equal(a, e)


def test_from_pretrained_roundtrip_and_load_prior(tmp_path):
    x = torch.randn(1, 2, 16, 16)
    den = tiny_padis(position_convention="published", canvas_pad=6)
    den.save_pretrained(tmp_path / "p")
    tiny_edm().save_pretrained(tmp_path / "e")
    back = load_prior(tmp_path / "p.safetensors")
    assert isinstance(back, PaDISDenoiser) and back.config == den.config
    assert isinstance(load_prior(tmp_path / "e"), EDMDenoiser)
    with torch.no_grad():
        assert torch.equal(den(x, 0.4, generator=torch.Generator().manual_seed(1)),
                           back(x, 0.4, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(CheckpointError, match="e.safetensors"):
        PaDISDenoiser.from_pretrained(tmp_path / "e")
    with pytest.raises(CheckpointError, match="no-such"):
        load_prior("no-such-checkpoint")


@pytest.mark.parametrize("name,published", [("padis-paper", 54_413_186), ("edm-paper", 65_460_610)])
def test_paper_configs_have_published_parameter_counts(name, published):
    with torch.device("meta"):  # shapes only: no memory, no weight initialisation
        n = count_parameters(build_unet(name))
    assert abs(n - published) <= 0.03 * published


def _mri_problem(H=32, W=32, coils=3):
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(1, coils, H, W, generator=g, dtype=torch.complex64)
    maps = maps / maps.abs().pow(2).sum(1, keepdim=True).sqrt()
    mask = torch.zeros(H, W)
    mask[:, ::2] = 1
    physics = dinv.physics.MultiCoilMRI(mask=mask, coil_maps=maps, img_size=(1, 2, H, W))
    x = torch.randn(1, 2, H, W, generator=g) * 0.3
    return physics(x), physics


def test_padis_inside_deepinv_dps_and_diffpir():
    y, physics = _mri_problem()
    den = tiny_padis(seed=0)
    dps = dinv.sampling.DPS(den, num_steps=2, minus_one_one=False, dtype=torch.float32)
    x_hat = dps(y, physics, x_init=(1, 2, 32, 32))
    assert x_hat.shape == (1, 2, 32, 32) and torch.isfinite(x_hat).all()
    diffpir = dinv.sampling.DiffPIR(den, dinv.optim.data_fidelity.L2(), max_iter=2, sigma=0.05)
    x_hat = diffpir(y, physics, x_init=physics.A_adjoint(y))
    assert x_hat.shape == (1, 2, 32, 32) and torch.isfinite(x_hat).all()


def test_chunked_gradient_equals_one_batch():
    """max_batch under a gradient (DPS) recomputes each chunk in the backward pass: same value and gradient."""
    torch.manual_seed(0)
    pre = EDMPrecond(build_unet("padis-tiny")).eval().requires_grad_(False)
    x = torch.randn(1, 2, 48, 48)
    results = []
    for max_batch in (None, 5):
        den = PaDISDenoiser(pre, patch_size=16, pad=16, max_batch=max_batch)
        xi = x.clone().requires_grad_(True)
        out = den(xi, 0.5, generator=torch.Generator().manual_seed(1))
        out.square().sum().backward()
        results.append((out.detach(), xi.grad))
    assert torch.equal(results[0][0], results[1][0]) and torch.allclose(results[0][1], results[1][1], atol=1e-6)


def test_deepinv_pretrained_convention(tiny_checkpoints):
    """``PaDISDenoiser(pretrained=...)`` / ``EDMDenoiser(pretrained=...)`` as deepinv models load, with the
    checkpoint's settings unless given."""
    a = PaDISDenoiser(pretrained=tiny_checkpoints["padis"])
    b = PaDISDenoiser.from_pretrained(tiny_checkpoints["padis"])
    assert (a.patch_size, a.pad) == (b.patch_size, b.pad) == (16, 16)
    assert PaDISDenoiser(pretrained=tiny_checkpoints["padis"], pad=8).pad == 8
    x = torch.randn(1, 2, 32, 32)
    e1, e2 = EDMDenoiser(pretrained=tiny_checkpoints["edm"]), EDMDenoiser.from_pretrained(tiny_checkpoints["edm"])
    with torch.no_grad():
        assert torch.equal(e1(x, 0.3), e2(x, 0.3))
    with pytest.raises(ConfigError, match="needs a preconditioned network or pretrained"):
        PaDISDenoiser()
    with pytest.raises(CheckpointError, match="checkpoint kind is 'edm', expected 'padis'"):
        PaDISDenoiser(pretrained=tiny_checkpoints["edm"])


def test_deepinv_style_inputs(tiny_checkpoints):
    """Complex (B, 1, H, W) images, per-image constant noise maps and ``.double()`` work; a real 1-channel input
    (what ComplexDenoiserWrapper passes) and a varying noise map are one clear line each."""
    den = EDMDenoiser.from_pretrained(tiny_checkpoints["edm"])
    x = torch.randn(2, 2, 32, 32)
    with torch.no_grad():
        ref = den(x, torch.tensor([0.2, 0.5]))
        z = torch.complex(x[:, :1], x[:, 1:])
        out = den(z, torch.tensor([0.2, 0.5]))
        assert out.shape == (2, 1, 32, 32) and torch.is_complex(out)
        assert torch.allclose(torch.cat([out.real, out.imag], 1), ref, atol=1e-6)
        noise_map = torch.tensor([0.2, 0.5]).view(2, 1, 1, 1).expand(2, 1, 32, 32)
        assert torch.allclose(den(x, noise_map), ref, atol=1e-6)
        with pytest.raises(ConfigError, match="varies within an image"):
            den(x, torch.rand(2, 1, 32, 32))
        with pytest.raises(ConfigError, match="ComplexDenoiserWrapper splits the channels"):
            dinv.models.ComplexDenoiserWrapper(den)(z, 0.2)
        den64 = EDMDenoiser.from_pretrained(tiny_checkpoints["edm"]).double()
        out64 = den64(x.double(), 0.2)
        assert out64.dtype == torch.float64 and torch.allclose(out64.float(), den(x, 0.2), atol=1e-4)
    pad = PaDISDenoiser.from_pretrained(tiny_checkpoints["padis"])
    with torch.no_grad():
        g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
        zc = pad(z, 0.3, generator=g())
        assert torch.allclose(torch.cat([zc.real, zc.imag], 1), pad(x, 0.3, generator=g()), atol=1e-6)


SHIPPED_MRI_PRIORS = sorted(p.stem for p in BUNDLED_CHECKPOINTS.glob("*.json") if not p.stem.startswith("mrf-"))


@pytest.mark.parametrize("name", SHIPPED_MRI_PRIORS)
def test_deepinv_samplers_reproducible_with_seed(name):
    """deepinv's DPS and PosteriorDiffusion run twice with ``seed=`` give the same image when the prior shares the
    sampler's ``rng`` (deepinv does not hand it to the denoiser); DiffPIR reseeds torch's global RNG, which a prior
    without a generator draws from. Unseeded, two DPS runs differ."""
    y, physics = _mri_problem(64, 64)
    g = torch.Generator().manual_seed(0)
    den = load_prior(name, rng=g)
    assert den.generator is g
    dps = dinv.sampling.DPS(den, num_steps=2, minus_one_one=False, dtype=torch.float32, rng=g)
    posterior = dinv.sampling.PosteriorDiffusion(
        data_fidelity=dinv.sampling.DPSDataFidelity(denoiser=den), denoiser=den, minus_one_one=False,
        sde=dinv.sampling.VarianceExplodingDiffusion(sigma_max=1.0, sigma_min=0.02, dtype=torch.float32),
        solver=dinv.sampling.EulerSolver(timesteps=torch.linspace(1, 0.01, 3), rng=g), dtype=torch.float32)
    for sampler in (dps, posterior):
        a, b = (sampler(y, physics, x_init=(1, 2, 64, 64), seed=111) for _ in range(2))
        assert torch.isfinite(a).all() and torch.equal(a, b), type(sampler).__name__
    if den.generator is not None and name.startswith("padis"):  # the patch prior's offsets: unseeded runs differ
        a, b = (dps(y, physics, x_init=(1, 2, 64, 64)) for _ in range(2))
        assert not torch.equal(a, b)
    den.set_generator(None)
    diffpir = dinv.sampling.DiffPIR(den, dinv.optim.data_fidelity.L2(), max_iter=2, sigma=0.05)
    a, b = (diffpir(y, physics, x_init=physics.A_adjoint(y), seed=111) for _ in range(2))
    assert torch.equal(a, b)


def test_denoiser_rng_is_deepinv_name_for_generator():
    g = torch.Generator().manual_seed(3)
    assert tiny_padis(rng=g).generator is g and tiny_edm(rng=g).generator is g
    with pytest.raises(ConfigError, match="not both"):
        tiny_padis(rng=g, generator=torch.Generator())
