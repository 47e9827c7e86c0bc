"""The per-level sampler callback ``callback(step, sigma, x, x0)`` of every diffusion sampler: called once per noise
level (``steps`` calls) with increasing step index, non-increasing sigma and tensors of the output's shape, and
the output bit for bit the same with and without it (same generator seed)."""
from __future__ import annotations

import pytest
import torch

from padis_plugin import cartesian_mask, slice_problem
from padis_plugin.mrf.dictionary import MRFDictionary, tissue_grid
from padis_plugin.mrf.phantom import mrf_phantom
from padis_plugin.mrf.physics import MRFPhysics
from padis_plugin.mrf.sequence import jiang_fisp
from padis_plugin.mrf.spiral import build_trajectory
from padis_plugin.prior import EDMDenoiser, HFSDenoiser, PaDISDenoiser
from padis_plugin.solvers.base import DiffusionSampler
from padis_plugin.solvers.daps import DAPSExact
from padis_plugin.solvers.dds import DDS
from padis_plugin.solvers.dps import EDMDPS, PaDISDPS, VEDPS
from padis_plugin.solvers.hfs_pc import HFSPC
from padis_plugin.solvers.mrf import MRFDiPh
from padis_plugin.solvers.registry import build_solver

pytestmark = pytest.mark.usefixtures("one_thread")

N = 32


@pytest.fixture(scope="module")
def problem(slice_factory):
    """32 x 32, 4 coils, R = 4 with 8 ACS columns (the HFS band of width 8 is fully sampled)."""
    y, physics, _ = slice_problem(slice_factory(N, coils=4, acs=8), cartesian_mask(N, 4, acs_lines=8, seed=0))
    return y, physics


@pytest.fixture(scope="module")
def priors(tiny_checkpoints):
    return {"edm": EDMDenoiser.from_pretrained(tiny_checkpoints["edm"]),
            "padis": PaDISDenoiser.from_pretrained(tiny_checkpoints["padis"]),
            "hfs": HFSDenoiser.from_pretrained(tiny_checkpoints["hfs"])}


@pytest.fixture(scope="module")
def mrf_problem():
    """A 16 x 16 MRF phantom, 24 frames, rank 5 (the sampler's data path, not its accuracy, is under test)."""
    n, frames = 16, 24
    dictionary = MRFDictionary.build(jiang_fisp(frames), rank=5, grid=tissue_grid(target_atoms=200))
    maps = mrf_phantom(n, seed=1)
    mask = torch.from_numpy(maps.mask)
    x = torch.zeros(5, n, n, dtype=torch.complex64)
    x[:, mask] = (torch.from_numpy(maps.pd)[mask] * dictionary.norms[0].float())[None] * dictionary.atoms[0][:, None]
    physics = MRFPhysics.from_trajectory(dictionary.basis, build_trajectory(n, frames, 32, frames))
    physics.dictionary = dictionary
    return physics.A(x[None]), physics


# name -> (sampler from the priors, steps); every DiffusionSampler subclass, in each of its loop variants
SAMPLERS = {
    "ve-dps": (lambda p: VEDPS(p["edm"], steps=3, inner=2), 3),
    "padis-dps": (lambda p: PaDISDPS(p["padis"], steps=3, inner=2), 3),
    "padis-dps-evolving": (lambda p: PaDISDPS(p["padis"], steps=3, inner=2, pad_band="evolving"), 3),
    "edm-dps": (lambda p: EDMDPS(p["edm"], steps=3, inner=2), 3),
    "dds": (lambda p: DDS(p["edm"], steps=4, gamma=100.0), 4),
    "hfs-dds": (lambda p: DDS(p["hfs"], steps=3, high_band=8), 3),
    "daps": (lambda p: DAPSExact(p["edm"], steps=3, tau=0.05, cg_iters=3), 3),
    "daps-ode": (lambda p: DAPSExact(p["edm"], steps=2, ode_steps=2, tau=0.05, cg_iters=3), 2),
    "hfs-pc": (lambda p: HFSPC(p["hfs"], steps=3, band_width=8), 3),
}


class Recorder:
    """A callback that only records: (step, sigma, x, x0) per call, the tensors cloned."""

    def __init__(self):
        self.calls = []

    def __call__(self, step, sigma, x, x0):
        self.calls.append((step, sigma, x.clone(), x0.clone()))


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _check_calls(rec, steps, sigmas, shape, out):
    steps_seen = [c[0] for c in rec.calls]
    sigma_seen = [c[1] for c in rec.calls]
    assert steps_seen == list(range(steps))                           # once per level, increasing
    assert all(isinstance(s, float) for s in sigma_seen)
    assert sigma_seen == pytest.approx(sigmas.tolist())               # the schedule's levels ...
    assert all(a >= b for a, b in zip(sigma_seen, sigma_seen[1:]))    # ... non-increasing
    assert all(c[2].shape == shape and c[3].shape == shape for c in rec.calls)
    assert torch.equal(rec.calls[-1][2], out)                         # the last x is the output


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_callback_per_level_and_output_unchanged(name, problem, priors):
    y, physics = problem
    make, steps = SAMPLERS[name]
    plain = make(priors)(y, physics, generator=_gen())
    sampler, rec = make(priors), Recorder()
    sampler.callback = rec                                             # set after building, as the benchmark does
    out = sampler(y, physics, generator=_gen())
    assert torch.equal(out, plain)                                     # bit for bit
    _check_calls(rec, steps, sampler.sigmas, out.shape, out)
    assert all(torch.isfinite(c[3]).all() for c in rec.calls)


@pytest.mark.parametrize("lam", [1e-2, 0.0])
def test_mrf_diph_callback(lam, mrf_problem):
    y, physics = mrf_problem

    def make(callback=None):
        return MRFDiPh(lambda v, s: 0.9 * v, lam=lam, steps=3, sigma_max=1.0, sigma_min=0.05, callback=callback)

    plain = make()(y, physics, generator=_gen(3))
    rec = Recorder()
    sampler = make(rec)                                                # given to the constructor
    out = sampler(y, physics, generator=_gen(3))
    assert torch.equal(out, plain)
    steps_seen = [c[0] for c in rec.calls]
    assert steps_seen == [0, 1, 2] and [c[1] for c in rec.calls] == pytest.approx(sampler.sigmas.tolist())
    assert all(c[2].shape == out.shape and c[3].shape == out.shape for c in rec.calls)
    assert torch.equal(rec.calls[-1][3], out)                          # x0 = z in the data's units: the output


def test_registry_built_solver_takes_a_callback_and_draws_are_batched(problem, tiny_checkpoints):
    """A solver built from a config gets its callback as an attribute; with samples = 2 on one slice the two
    draws run as one batch: one call per level with both draws along the batch axis. None switches it off."""
    y, physics = problem
    solver = build_solver("edm-dds", {"checkpoint": tiny_checkpoints["edm"], "steps": 3, "samples": 2})
    assert isinstance(solver, DiffusionSampler) and solver.callback is None
    plain = solver(y, physics, generator=_gen(1))
    solver.callback = rec = Recorder()
    assert torch.equal(solver(y, physics, generator=_gen(1)), plain)
    assert [c[0] for c in rec.calls] == [0, 1, 2] and rec.calls[0][2].shape == (2, 2, N, N)
    solver.callback = None
    assert torch.equal(solver(y, physics, generator=_gen(1)), plain) and len(rec.calls) == 3


def test_bench_shows_each_step_in_its_progress_bar(problem, tiny_checkpoints):
    """The benchmark's per-step progress goes through the callback: one postfix per level, the solver's own
    callback slot empty again afterwards, the output unchanged; a user's callback is left in place."""
    from padis_plugin.bench.run import _step_progress

    class Bar:
        def __init__(self):
            self.texts = []

        def set_postfix_str(self, text, refresh=True):
            self.texts.append(text)

    y, physics = problem
    solver = build_solver("edm-dds", {"checkpoint": tiny_checkpoints["edm"], "steps": 3})
    plain = solver(y, physics, generator=_gen(2))
    bar = Bar()
    with _step_progress(bar, solver, "DDS"):
        out = solver(y, physics, generator=_gen(2))
    assert torch.equal(out, plain) and solver.callback is None
    assert [t.split(",")[0] for t in bar.texts] == ["DDS: step 1", "DDS: step 2", "DDS: step 3", ""]
    solver.callback = mine = Recorder()
    with _step_progress(Bar(), solver, "DDS"):
        solver(y, physics, generator=_gen(2))
    assert solver.callback is mine and len(mine.calls) == 3
