"""Posterior mean from K samples (``samples: K``) in every sampler: K = 1 is the plain sampler, the returned
mean is the mean of the K draws each made with its own generator, the spread is kept, and a generator fixes it."""
from __future__ import annotations

import pytest
import torch

from padis_plugin import DDS, build_solver, cartesian_mask, slice_problem
from padis_plugin.errors import ConfigError
from padis_plugin.prior import EDMDenoiser
from padis_plugin.solvers.sample_mean import draw_generators

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def problem(slice_factory):
    y, physics, _ = slice_problem(slice_factory(32, coils=4, acs=8), cartesian_mask(32, 4, acs_lines=8, seed=0))
    return y, physics


@pytest.fixture(scope="module")
def edm(tiny_checkpoints):
    return EDMDenoiser.from_pretrained(tiny_checkpoints["edm"])


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_one_sample_is_the_plain_sampler_bit_for_bit(problem, edm):
    y, physics = problem
    sampler = DDS(edm, steps=4, gamma=100.0, eta=1.0)
    assert torch.equal(sampler(y, physics, generator=_gen(0)), sampler.sample(y, physics, generator=_gen(0)))
    assert sampler.std is None


def test_mean_of_k_draws_each_with_its_own_generator(problem, edm):
    y, physics = problem
    sampler = DDS(edm, steps=4, gamma=100.0, eta=1.0, samples=3)
    mean, std = sampler(y, physics, generator=_gen(7), return_std=True)
    assert sampler.nfe == 3 * 4
    draws = torch.stack([DDS(edm, steps=4, gamma=100.0, eta=1.0).sample(y, physics, generator=g)
                         for g in draw_generators(_gen(7), 3, 1)])
    assert torch.allclose(mean, draws.mean(0), atol=1e-5)
    assert torch.allclose(std, draws.std(0), atol=1e-5) and float(std.mean()) > 0
    assert not torch.allclose(draws[0], draws[1])  # the draws differ: independent streams


def test_same_generator_same_mean_and_chunked_draws_agree(problem, edm):
    y, physics = problem
    a = DDS(edm, steps=3, gamma=100.0, samples=4)(y, physics, generator=_gen(1))
    b = DDS(edm, steps=3, gamma=100.0, samples=4)(y, physics, generator=_gen(1))
    c = DDS(edm, steps=3, gamma=100.0, samples=4, sample_batch=1)(y, physics, generator=_gen(1))
    d = DDS(edm, steps=3, gamma=100.0, samples=4)(y, physics, generator=_gen(2))
    assert torch.equal(a, b) and torch.allclose(a, c, atol=1e-5) and not torch.allclose(a, d)


def test_a_batch_of_slices_with_per_slice_generators(problem, edm):
    y, physics = problem
    y2 = y.repeat(2, 1, 1, 1, 1)
    sampler = DDS(edm, steps=3, gamma=100.0, samples=2)
    out = sampler(y2, physics, generator=[_gen(3), _gen(4)])
    alone = sampler(y, physics, generator=[_gen(4)])
    assert out.shape == (2, 2, 32, 32) and torch.allclose(out[1:], alone, atol=1e-5)


@pytest.mark.parametrize("name, kind, params", [
    ("padis-dps", "padis", {"steps": 2, "inner": 1}), ("edm-dps", "edm", {"steps": 2, "inner": 1}),
    ("padis-dds", "padis", {"steps": 2}), ("edm-dds", "edm", {"steps": 2}),
    ("padis-daps", "padis", {"steps": 2}), ("edm-daps", "edm", {"steps": 2}),
    ("hfs-pc", "hfs", {"steps": 2}), ("hfs-dds", "hfs", {"steps": 2}),
    ("padis-diffpir", "padis", {"iterations": 2, "progress": False}),
])
def test_every_registered_sampler_takes_samples(problem, tiny_checkpoints, name, kind, params):
    y, physics = problem
    solver = build_solver(name, {"checkpoint": tiny_checkpoints[kind], "samples": 2, **params})
    out = solver(y, physics, generator=_gen(0))
    assert out.shape == (1, 2, 32, 32) and torch.isfinite(out).all()
    assert solver.std is not None and solver.std.shape == out.shape
    assert torch.equal(out, build_solver(name, {"checkpoint": tiny_checkpoints[kind], "samples": 2, **params})(
        y, physics, generator=_gen(0)))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_sample_counts_are_refused(edm, bad):
    with pytest.raises(ConfigError, match="samples must be an integer >= 1"):
        DDS(edm, samples=bad)


def test_deepinv_randomness_conventions(problem, edm):
    """``seed=`` at call time and ``rng=`` at construction, as deepinv's samplers take them."""
    y, physics = problem
    a = DDS(edm, steps=3, gamma=100.0)(y, physics, seed=5)
    b = DDS(edm, steps=3, gamma=100.0)(y, physics, seed=5)
    c = DDS(edm, steps=3, gamma=100.0)(y, physics, generator=_gen(5))
    sampler = DDS(edm, steps=3, gamma=100.0, rng=_gen(0))
    d, e = sampler(y, physics, seed=5), sampler(y, physics, seed=5)
    assert torch.equal(a, b) and torch.equal(a, c) and torch.equal(a, d) and torch.equal(d, e)
    assert not torch.equal(a, DDS(edm, steps=3, gamma=100.0)(y, physics, seed=6))
    f, g = sampler(y, physics), sampler(y, physics)  # the rng runs on: two unseeded calls differ
    assert not torch.equal(f, g)
