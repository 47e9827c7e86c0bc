"""``deepinv-pnp``: deepinv's own plug-and-play optimisers (HQS, PGD, DRS with a ``PnP`` prior) as a named solver.

It lets a benchmark config put deepinv's stock algorithms in the same table as our samplers, with any of our
priors (``padis``, ``edm``: the diffusion denoiser used as a plain Gaussian denoiser) or a deepinv denoiser
that needs no downloaded weights (``wavelet``, ``tv``). The denoiser strength follows a geometric schedule
from ``sigma_max`` to ``sigma_min`` over the iterations, as in DPIR (Zhang et al., TPAMI 2021), which
converges far better than one fixed level. The solver is the stock deepinv object: it takes no ``generator``;
the bench seeds torch's global RNG for it (``solvers.contract.call_solver``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
from deepinv.models import Reconstructor
from deepinv.optim import DRS, HQS, PGD, PnP
from deepinv.optim.data_fidelity import L2

from ..acquisition.physics import check_physics_coil_maps
from ..rng import denoise_fn
from .params import takes_params
from .prior_loading import PriorChoice
from .settings import family_settings, given, tuned

ALGORITHMS = {"HQS": HQS, "PGD": PGD, "DRS": DRS}
Denoiser = Literal["padis", "edm", "wavelet", "tv"]
DENOISERS = get_args(Denoiser)
PRIORS = ("padis", "edm")  # the denoisers that are our priors (a checkpoint)


class CountingDenoiser(torch.nn.Module):
    """The denoiser as deepinv's ``PnP`` and samplers call it, ``D(x, sigma)``, counting calls in ``nfe``; a
    ``generator`` goes on to a random (patch) denoiser's calls (:func:`~padis_plugin.rng.denoise_fn`)."""

    def __init__(self, denoiser, generator=None):
        super().__init__()
        self.denoiser, self.generator, self.nfe = denoiser, generator, 0

    def forward(self, x, sigma, *args, **kwargs):
        self.nfe += 1
        return denoise_fn(self.denoiser, self.generator)(x, sigma)


def sigma_schedule(sigma_max: float, sigma_min: float, iterations: int) -> list[float]:
    """Geometric denoiser levels from ``sigma_max`` down to ``sigma_min`` (DPIR's schedule)."""
    return np.geomspace(sigma_max, sigma_min, iterations).tolist() if iterations > 1 else [float(sigma_min)]


def deepinv_denoiser(p: PnPParams, device):
    """The denoiser named by ``p.denoiser``: one of our priors (``checkpoint``'s), or a weight-free deepinv one."""
    if p.denoiser in PRIORS:
        return p.load(device)
    if p.denoiser == "wavelet":
        from deepinv.models import WaveletDenoiser

        return WaveletDenoiser(level=3, wv=p.wavelet, device=device)
    from deepinv.models import TVDenoiser

    return TVDenoiser(n_it_max=50)


def build_pnp(denoiser, algorithm=None, iterations=None, sigma_max=0.2, sigma_min=0.01, stepsize=50.0) -> Reconstructor:
    """deepinv's ``algorithm`` with ``PnP(denoiser)`` and an L2 data term on the caller's physics. The returned
    optimiser reports ``nfe`` (denoiser calls of its last run). ``algorithm`` and ``iterations`` left out: the
    tuned ones of the denoiser's prior family (PaDIS: DRS 40, EDM: DRS 20), else HQS 20, as ``pnp`` gives them."""
    tuned = {"algorithm": "HQS", "iterations": 20, **family_settings(denoiser, "pnp")}
    algorithm = tuned["algorithm"] if algorithm is None else algorithm
    iterations = tuned["iterations"] if iterations is None else iterations
    counting = CountingDenoiser(denoiser)
    algo = ALGORITHMS[algorithm](data_fidelity=L2(), prior=PnP(counting), stepsize=float(stepsize),
                                 sigma_denoiser=sigma_schedule(sigma_max, sigma_min, iterations),
                                 max_iter=int(iterations), early_stop=False)
    return _PnPReconstructor(algo, counting)


class _PnPReconstructor(Reconstructor):
    """A deepinv optimiser as a no-grad reconstructor with ``nfe``; called with ``(y, physics)`` only."""

    def __init__(self, algo, counting):
        super().__init__()
        self.algo, self.counting = algo, counting

    @property
    def nfe(self) -> int:
        return self.counting.nfe

    def forward(self, y, physics, **kwargs):
        check_physics_coil_maps(physics)
        self.counting.nfe = 0
        with torch.no_grad():
            return self.algo(y, physics)


@dataclass
class PnPSettings:
    """deepinv's optimiser, its iterations and denoiser schedule; ``denoiser``: one of our priors (``padis``,
    ``edm``: the checkpoint's) or a weight-free deepinv denoiser (``wavelet``, ``tv``)."""

    algorithm: Literal["HQS", "PGD", "DRS"] = "HQS"
    denoiser: Denoiser = "padis"
    iterations: int = 20
    sigma_max: float = 0.2
    sigma_min: float = 0.01
    stepsize: float = 50.0                # close to a data projection; measured on a validation slice
    wavelet: str = "db4"


@dataclass
class PnPParams(PnPSettings, PriorChoice):
    """``pnp``'s parameters: the optimiser's and, for the ``padis`` / ``edm`` denoisers, the prior's."""

    def check(self, bad):  # iterations and stepsize ranges: params.LIMITS
        if not self.sigma_min <= self.sigma_max:
            bad.add("sigma_min", f": need 0 < sigma_min <= sigma_max, got {self.sigma_min}, {self.sigma_max}")
        if self.checkpoint is not None and self.denoiser not in PRIORS:
            bad.add("checkpoint", f"is for the padis / edm denoisers, not {self.denoiser!r}")
            return
        PriorChoice.check(self, bad)
        if self.checkpoint is not None and not bad and self.family().name != self.denoiser:
            bad.add("denoiser", f": {self.checkpoint!r} is a {self.family().name!r} prior, not {self.denoiser!r}")


_tuned = tuned("pnp")


def _pnp_settings(params, grid=None) -> dict:
    """A prior's tuned settings (:func:`~.settings.tuned`); a weight-free deepinv denoiser takes none."""
    mine = given(params)
    return mine if mine.get("denoiser") in ("wavelet", "tv") else _tuned(params, grid)


_pnp_settings.algorithm = "pnp"


@takes_params(PnPParams, "pnp", settings=_pnp_settings)
def make_pnp(p: PnPParams, device="cpu") -> Reconstructor:
    """``pnp``: deepinv's ``algorithm`` with one of our priors or a weight-free deepinv denoiser
    (:class:`PnPParams`)."""
    return build_pnp(deepinv_denoiser(p, device), p.algorithm, p.iterations, p.sigma_max, p.sigma_min,
                     p.stepsize).to(device)
