"""Shared sampler parts: schedules passed in, one randomness helper, data-consistency steps, and VE-DPS
rebuilt on them with output identical to the sampler before the rebuild (pinned)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import make_slice
from padis_plugin.acquisition.masks import cartesian_mask
from padis_plugin.acquisition import slice_problem
from padis_plugin.prior import PaDISDenoiser
from padis_plugin.prior.schedules import edm_sigmas
from padis_plugin.rng import denoise_fn, randn
from padis_plugin.solvers.data_consistency import CGProx, DPSGradient, Projection
from padis_plugin.solvers.aliases import make_edm_dps, make_padis_dps
from padis_plugin.solvers.dps import VEDPS

pytestmark = pytest.mark.usefixtures("one_thread")
PINNED = Path(__file__).parent / "data" / "vedps_pinned.npz"


def _small_problem(n=32, coils=4):
    y, physics, x_ref = slice_problem(make_slice(n, coils), cartesian_mask(n, acceleration=4, acs_lines=min(4, n // 8), seed=0))
    return y, physics, x_ref


@pytest.mark.parametrize("name,make", [("padis", make_padis_dps), ("edm", make_edm_dps)])
def test_vedps_output_is_pinned(name, make):
    """3 x 2 VE-DPS steps of the shipped S = 25 priors equal the output recorded before VE-DPS was rebuilt on the
    shared parts (same generator, same draws in the same order, the patch offsets included). To float rounding
    (1e-5): the pin was made on an Intel CPU, and other CPUs' kernels differ in the last bits (2e-6 on AMD EPYC);
    a changed draw or step order moves the output by far more."""
    y, physics, _ = _small_problem()
    sampler = make({"checkpoint": f"{name}-s25", "steps": 3, "inner": 2, "progress": False})
    out = sampler(y, physics, generator=torch.Generator().manual_seed(0)).numpy()
    pinned = np.load(PINNED)[name]
    assert np.allclose(out, pinned, rtol=1e-5, atol=1e-5), float(np.abs(out - pinned).max())


def test_given_sigmas_equal_built_schedule_and_slices_shorten_it():
    den = lambda x, sigma: 0.5 * x  # noqa: E731
    y, physics, _ = _small_problem(16, 2)
    built = VEDPS(den, steps=6, inner=1, sigma_max=5, sigma_min=0.01)
    given = VEDPS(den, inner=1, sigmas=edm_sigmas(6, 5, 0.01))
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(built(y, physics, generator=g()), given(y, physics, generator=g()))
    short = VEDPS(den, inner=1, sigmas=edm_sigmas(6, 5, 0.01)[:2])
    short(y, physics, generator=g())
    assert short.steps == 2 and short.nfe == 2


def test_per_slice_generators_give_each_slice_its_own_stream():
    gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
    both = randn((2, 3), gens)
    assert torch.equal(both[0], torch.randn(3, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(both[1], torch.randn(3, generator=torch.Generator().manual_seed(2)))


def test_patch_denoiser_batch_equals_separate_runs_with_per_slice_generators(tiny_checkpoints):
    """With one generator per slice the patch prior draws each slice's offsets from its own generator."""
    den = PaDISDenoiser.from_pretrained(tiny_checkpoints["padis"]).eval()
    x = torch.randn(2, 2, 32, 32, generator=torch.Generator().manual_seed(0))
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    with torch.no_grad():
        both = denoise_fn(den, [g(1), g(2)])(x, 0.5)
        a = denoise_fn(den, g(1))(x[:1], 0.5)
        b = denoise_fn(den, g(2))(x[1:], 0.5)
    torch.testing.assert_close(both, torch.cat([a, b]), rtol=1e-5, atol=1e-6)


def test_padis_dps_does_not_change_the_denoiser_it_is_given(tiny_checkpoints):
    from padis_plugin.solvers.dps import PaDISDPS

    den = PaDISDenoiser.from_pretrained(tiny_checkpoints["padis"])
    before = (den.patch_size, den.pad, den.max_batch)
    sampler = PaDISDPS(den, patch_size=32, pad=8, max_batch=3)
    assert (den.patch_size, den.pad, den.max_batch) == before
    assert (sampler.denoiser.patch_size, sampler.denoiser.pad, sampler.denoiser.max_batch) == (32, 8, 3)
    assert sampler.denoiser.precond is den.precond  # shares the weights


def _dense(physics, shape):
    n = int(np.prod(shape))
    basis = torch.eye(n, dtype=torch.float64).view(n, *shape).float()
    return torch.stack([physics.A_adjoint_A(basis[k:k + 1]).flatten() for k in range(n)], 1).double()


def test_cg_prox_matches_a_direct_solve():
    """Converged CGProx = the exact solve of (I + gamma A^H A) u = x0 + gamma A^H y (dense, 2 x 8 x 8)."""
    y, physics, _ = _small_problem(8, 2)
    x0 = torch.randn(1, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    gamma = 2.0
    M = torch.eye(128, dtype=torch.float64) + gamma * _dense(physics, (2, 8, 8))
    b = (x0 + gamma * physics.A_adjoint(y)).double().flatten()
    exact = torch.linalg.solve(M, b).view(1, 2, 8, 8).float()
    torch.testing.assert_close(CGProx(gamma, iters=60)(x0, y, physics), exact, rtol=1e-4, atol=1e-4)
    assert torch.equal(CGProx(gamma, iters=0)(x0, y, physics), x0)


def test_projection_reduces_the_data_residual():
    """The noiseless projection converges to data consistency (the DDS test pins it to 1e-5 on a
    well-conditioned problem); on these smooth birdcage maps CG is slower but monotone."""
    y, physics, x_ref = _small_problem(16, 4)
    y = physics.A(x_ref)  # noiseless data
    x0 = torch.randn(1, 2, 16, 16, generator=torch.Generator().manual_seed(0))
    res = [float((physics.A(Projection(iters=k)(x0, y, physics)) - y).norm()) for k in (0, 5, 20, 60)]
    assert all(b < a for a, b in zip(res, res[1:])) and res[-1] < 0.01 * res[0], res


def test_dps_gradient_needs_the_iterate():
    y, physics, _ = _small_problem(8, 2)
    with pytest.raises(Exception, match="iterate"):
        DPSGradient(1.0)(torch.zeros(1, 2, 8, 8), y, physics)


def test_x_init_accepts_deepinv_shape_tuple_or_tensor():
    """deepinv's convention: ``x_init`` may be a shape (the sampler's own start) or a tensor."""
    y, physics, _ = _small_problem(16, 2)
    den = lambda x, sigma: 0.5 * x  # noqa: E731
    sampler = VEDPS(den, steps=2, inner=1)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(sampler(y, physics, generator=g(), x_init=(1, 2, 16, 16)), sampler(y, physics, generator=g()))
    out = sampler(y, physics, generator=g(), x_init=torch.zeros(1, 2, 16, 16))
    assert out.shape == (1, 2, 16, 16)
    with pytest.raises(Exception, match="shape"):
        sampler(y, physics, x_init=(1, 2, 8, 8))
