"""deepinv's own samplers as named solvers: ``deepinv-dps`` (deepinv's DPS) and ``deepinv-diffpir`` (the same
solver as ``diffpir``, deepinv's DiffPIR)."""
import pytest
import torch

from padis_plugin.errors import ConfigError
from padis_plugin.solvers.deepinv_dps import DeepinvDPS
from padis_plugin.solvers.registry import build_solver
from tests.test_dps import GaussianDenoiser, toy_problem


def test_deepinv_dps_is_a_function_of_its_generator():
    y, physics = toy_problem(H=16, C=2)
    sampler = DeepinvDPS(GaussianDenoiser(), steps=4, weight=300.0)
    a = sampler(y, physics(), generator=torch.Generator().manual_seed(0))
    b = sampler(y, physics(), generator=torch.Generator().manual_seed(0))
    c = sampler(y, physics(), generator=torch.Generator().manual_seed(1))
    assert a.shape == (1, 2, 16, 16) and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert sampler.nfe == 3  # DDPM's solver never calls the denoiser at its last time step (t = 0)
    s = DeepinvDPS(GaussianDenoiser(), steps=4, rng=torch.Generator())
    assert torch.equal(s(y, physics(), seed=0), s(y, physics(), seed=0))  # deepinv's call-time seed


def test_deepinv_dps_mean_of_draws(tiny_checkpoints):
    """Registered with a prior from a checkpoint; ``samples: 2`` returns the mean of two draws and their std."""
    y, physics = toy_problem(H=32, C=2)
    one = build_solver("deepinv-dps", {"checkpoint": tiny_checkpoints["padis"], "steps": 3})
    two = build_solver("deepinv-dps", {"checkpoint": tiny_checkpoints["padis"], "steps": 3, "samples": 2})
    mean, std = two(y, physics(), generator=torch.Generator().manual_seed(0), return_std=True)
    assert mean.shape == std.shape == (1, 2, 32, 32) and float(std.abs().max()) > 0
    one(y, physics(), generator=torch.Generator().manual_seed(0))
    assert one.nfe == 2 and two.nfe == 2 * one.nfe
    with pytest.raises(ConfigError, match="hfs"):
        build_solver("deepinv-dps", {"checkpoint": tiny_checkpoints["hfs"]})


def test_deepinv_diffpir_is_diffpir(tiny_checkpoints):
    y, physics = toy_problem(H=32, C=2)
    params = {"checkpoint": tiny_checkpoints["padis"], "iterations": 3, "progress": False}
    a = build_solver("diffpir", params)(y, physics(), generator=torch.Generator().manual_seed(0))
    b = build_solver("deepinv-diffpir", params)(y, physics(), generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
