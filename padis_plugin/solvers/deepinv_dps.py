"""``deepinv-dps``: deepinv's own DPS (Chung et al. 2023, :class:`deepinv.sampling.DPS`) with one of our priors.

deepinv's DPS runs the variance-preserving SDE of DDPM on images in [-1, 1] and guides each step by
``weight * grad ||y - A D(x_t)||`` (the residual norm, not its square). Two settings make it work with our priors
on MRI data: ``minus_one_one=False`` (our denoisers take signed complex images as they are; deepinv's default
would map them to [0, 1] first) and a guidance weight near 300 instead of 1, because the k-space residual norm of
a multi-coil slice at our data scale is a few units where DPS's natural images give hundreds (both measured on
the validation patients, ``experiments/256_deepinv_samplers_validation``). It keeps DPS's clip of the denoised
estimate to [-1, 1]: the prepared slices are scaled so the image magnitude stays inside it.

Randomness: deepinv's SDE solver draws from its ``rng``; the patch prior draws its tile offsets from the
generator it is called with. Each draw here builds the sampler with the draw's generator as ``rng`` and gives the
same generator to the denoiser, so a draw is a function of that generator alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from deepinv.models import Reconstructor
from deepinv.sampling import DPS

from ..errors import DataError
from ..progress import nested_bars_shown
from ..rng import first_generator
from .params import takes_params, values
from .pnp import CountingDenoiser
from .prior_loading import PriorChoice
from .sample_mean import SampleMean
from .settings import tuned


class DeepinvDPS(SampleMean, Reconstructor):
    r"""deepinv's :class:`~deepinv.sampling.DPS` with an MRI denoiser on multi-coil MRI.

    :param denoiser: a deepinv denoiser on (B, 2, H, W) MRI images (e.g. :class:`~padis_plugin.prior.PaDISDenoiser`).
    :param int steps: SDE steps, one denoiser call with its gradient each (deepinv's ``num_steps``).
    :param float weight: DPS's guidance weight :math:`\lambda` on the residual norm.
    :param str solver: deepinv's SDE solver (``ddpm``, ``ancestral``, ``ddim``, ``euler``).
    :param str schedule: ``vp`` (DDPM's, DPS's own) or ``ve``.
    :param int samples: draws per call; their mean is returned (:class:`~.sample_mean.SampleMean`).
    """

    batch_draws = False  # deepinv's solver draws one stream per call: K draws run one after another

    def __init__(self, denoiser, steps=100, weight=300.0, solver="ddpm", schedule="vp", progress=False,
                 device="cpu", samples=1, rng=None):
        super().__init__(device=device)
        self.set_samples(samples)
        self.rng = rng
        self.denoiser, self.steps, self.weight = denoiser, int(steps), float(weight)
        self.solver, self.schedule, self.progress, self.device = solver, schedule, progress, device
        self.nfe = 0

    def sample(self, y, physics, generator=None, **kwargs):
        """One draw (B, 2, H, W); all randomness from ``generator`` (its first element if a list)."""
        if not torch.isfinite(y).all():
            raise DataError("deepinv-dps: the measurements y hold non-finite values")
        g = first_generator(generator)
        model = CountingDenoiser(self.denoiser, g)
        dps = DPS(model, schedule=self.schedule, solver=self.solver, num_steps=self.steps, weight=self.weight,
                  minus_one_one=False, verbose=self.progress and nested_bars_shown(), device=y.device,
                  dtype=torch.float32, rng=g)
        with torch.no_grad():
            shape = tuple(physics.A_adjoint(y).shape)
        x = dps(y, physics, x_init=shape)
        self.nfe = model.nfe
        return x.detach()


@dataclass
class DeepinvDPSSettings:
    """:class:`DeepinvDPS`'s parameters."""

    steps: int = 100
    weight: float = 300.0
    solver: Literal["ddpm", "ancestral", "ddim", "euler"] = "ddpm"
    schedule: Literal["vp", "ve"] = "vp"
    progress: bool = False
    samples: int = 1


@dataclass
class DeepinvDPSParams(DeepinvDPSSettings, PriorChoice):
    """``deepinv-dps``'s parameters: deepinv DPS's and its prior's (PaDIS or EDM)."""


@takes_params(DeepinvDPSParams, "deepinv-dps", settings=tuned("deepinv-dps"))
def make_deepinv_dps(p: DeepinvDPSParams, device="cpu") -> DeepinvDPS:
    """``deepinv-dps``: deepinv's DPS with the prior of ``checkpoint`` (:class:`DeepinvDPSParams`)."""
    return DeepinvDPS(p.load(device), **values(p, DeepinvDPSSettings), device=device)
