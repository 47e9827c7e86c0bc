"""Stock deepinv reconstructors through our call path: the solver contract (generator only where taken, seeded
global RNG otherwise), the registered ``deepinv-pnp`` solver, and a bench run with a plain deepinv optimiser."""
import pytest
import torch
import deepinv as dinv

from padis_plugin.errors import ConfigError
from padis_plugin.acquisition.masks import cartesian_mask
from padis_plugin.metrics import image_metrics
from padis_plugin.acquisition import slice_problem
from padis_plugin.solvers.registry import build_solver
from padis_plugin.solvers.contract import accepts_generator, call_solver, solver_nfe
from padis_plugin.solvers.pnp import sigma_schedule

pytestmark = pytest.mark.usefixtures("one_thread")


class _NoisyStock(dinv.models.Reconstructor):
    """A stock-style reconstructor: no generator parameter, randomness from torch's global RNG."""

    def forward(self, y, physics, **kwargs):
        assert "generator" not in kwargs
        x = physics.A_adjoint(y)
        return x + 0.01 * torch.randn_like(x)


def _problem(tiny_slice, r=4):
    return slice_problem(tiny_slice, cartesian_mask(64, r, 8, seed=0))


def test_generator_goes_only_to_solvers_that_take_it(tiny_slice):
    y, physics, _ = _problem(tiny_slice)
    stock = _NoisyStock()
    assert not accepts_generator(stock) and accepts_generator(build_solver("zero-filled"))
    state = torch.random.get_rng_state()
    a = call_solver(stock, y, physics, torch.Generator().manual_seed(3))
    b = call_solver(stock, y, physics, torch.Generator().manual_seed(3))
    c = call_solver(stock, y, physics, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is left as it was
    assert solver_nfe(stock) == 0


def test_deepinv_pnp_with_our_prior_and_with_a_stock_denoiser(tiny_slice, tiny_checkpoints):
    y, physics, x = _problem(tiny_slice)
    zf = image_metrics(physics.A_adjoint(y), x)["psnr"]
    wav = build_solver("deepinv-pnp", {"denoiser": "wavelet", "iterations": 8, "sigma_max": 0.05,
                                       "sigma_min": 0.005})
    out = call_solver(wav, y, physics, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and wav.nfe == 8
    assert image_metrics(out, x)["psnr"] > zf + 1.0  # a real reconstruction, not the adjoint
    pnp = build_solver("deepinv-pnp", {"checkpoint": tiny_checkpoints["padis"], "iterations": 3,
                                       "algorithm": "PGD", "stepsize": 1.0})
    a = call_solver(pnp, y, physics, torch.Generator().manual_seed(0))
    b = call_solver(pnp, y, physics, torch.Generator().manual_seed(0))
    assert pnp.nfe == 3 and torch.isfinite(a).all() and torch.equal(a, b)


def test_deepinv_pnp_parameter_errors():
    with pytest.raises(ConfigError, match="sigma_min <= sigma_max"):
        build_solver("deepinv-pnp", {"denoiser": "wavelet", "sigma_max": 0.01, "sigma_min": 0.1})
    with pytest.raises(ConfigError, match="algorithm"):
        build_solver("deepinv-pnp", {"algorithm": "ADMMX", "denoiser": "wavelet"})
    with pytest.raises(ConfigError, match="checkpoint is for"):
        build_solver("deepinv-pnp", {"denoiser": "tv", "checkpoint": "padis-s25"})
    assert sigma_schedule(0.2, 0.01, 3) == pytest.approx([0.2, 0.2 * 0.05 ** 0.5, 0.01])
