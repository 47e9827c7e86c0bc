r"""DAPS, Decoupled Annealing Posterior Sampling (Zhang et al. 2024), with an exact inner step for linear
Gaussian measurements (our design, validated against DAPS's Langevin inner loop in the tests).

DAPS anneals :math:`x_t \to x_0 \sim p(x_0 \mid x_t, y) \to x_{t+1} = x_0 + \sigma_{t+1} n`, with
:math:`p(x_0 \mid x_t) \approx \mathcal N(\hat x_0(x_t), \sigma_t^2 I)` around the denoised estimate. For
:math:`y = A x_0 + \mathcal N(0, \tau^2 I)` that conditional is Gaussian, so instead of DAPS's Langevin steps
it is drawn exactly by perturb-and-MAP (one sample of a Gaussian is the MAP of randomly perturbed data):

.. math::

    z = \hat x_0 + \sigma_t n, \qquad y' = y + \tau m, \qquad
    x_0 = \arg\min_u \tfrac{1}{2\sigma_t^2}\|u - z\|^2 + \tfrac{1}{2\tau^2}\|A u - y'\|^2

i.e. the proximal step with :math:`\gamma = \sigma_t^2/\tau^2`, solved by CG from :math:`z` (its covariance is
:math:`(I/\sigma_t^2 + A^H A/\tau^2)^{-1}`, the exact one, when CG has converged). :math:`\hat x_0` is one
denoiser call, or a few Euler steps of the probability-flow ODE from :math:`\sigma_t` (``ode_steps``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..errors import ConfigError
from ..prior.schedules import edm_sigmas
from .base import DiffusionSampler, ScheduleParams
from .data_consistency import CGProx
from .noise_level import check_tau, measurement_noise, sampled_entries
from .params import takes_params, values
from .prior_loading import PriorChoice
from .settings import family_settings, tuned
from ..progress import progress_bar


class DAPSExact(DiffusionSampler):
    r"""DAPS with the exact Gaussian inner step, on any deepinv denoiser and any LinearPhysics.

    :param denoiser: ``D(x, sigma)`` on (B, 2, H, W) images.
    :param int steps: annealing levels (50); or give ``sigmas``.
    :param float sigma_max, sigma_min, rho: the Karras schedule (10, 0.003, 7).
    :param int ode_steps: network calls per level for :math:`\hat x_0` (1: :math:`D(x_t, \sigma_t)`; more: Euler
        steps of the probability-flow ODE on a Karras grid from :math:`\sigma_t` to ``sigma_min``).
    :param tau: measurement noise std per real channel, a float or ``"auto"`` (estimated per slice by
        :func:`kspace_noise_level`).
    :param float tau_scale: multiplies ``tau``: the likelihood's width as a tuning knob (> 1 trusts the data
        less: a weaker prox weight and larger measurement perturbations). Left out: the tuned value of the
        denoiser's prior family (0.5 for PaDIS), else 1.
    :param int cg_iters: CG iterations of the inner solve (20).
    """

    name = "DAPS"

    def __init__(self, denoiser, steps=50, sigma_max=10.0, sigma_min=0.003, rho=7.0, sigmas=None, ode_steps=1,
                 tau="auto", tau_scale=None, cg_iters=20, progress=False, device="cpu", samples=1, sample_batch=None,
                 rng=None, callback=None):
        if int(ode_steps) != ode_steps or ode_steps < 1:
            raise ConfigError(f"DAPS: ode_steps must be a positive integer, got {ode_steps}")
        if tau_scale is None:
            tau_scale = family_settings(denoiser, "daps").get("tau_scale", 1.0)
        check_tau(tau, tau_scale, "DAPS")
        super().__init__(denoiser, steps, sigma_max, sigma_min, rho, sigmas=sigmas, progress=progress,
                         device=device, samples=samples, sample_batch=sample_batch,
                         rng=rng, callback=callback)
        self.ode_steps, self.tau, self.tau_scale = int(ode_steps), tau, float(tau_scale)
        self.prox = CGProx(1.0, cg_iters)
        self.tau_used = None

    def _x0_hat(self, x, sigma, denoise):
        """Denoised estimate: one call, or ``ode_steps`` Euler steps of dx/dsigma = (x - D)/sigma."""
        if self.ode_steps == 1:
            return denoise(x, sigma)
        grid = edm_sigmas(self.ode_steps, sigma, min(self.sigma_min, sigma), self.rho).tolist()
        for k, s in enumerate(grid):
            d = denoise(x, s)
            if k == len(grid) - 1:
                return d
            x = x + (grid[k + 1] - s) * (x - d) / s

    def sample(self, y, physics, generator=None, x_init=None, **kwargs):
        r"""Sample; returns the posterior draw :math:`x_0` of the last level, (B, 2, H, W). The callback (see
        :class:`~.base.DiffusionSampler`) gets, per level, the re-noised iterate :math:`x_{t+1}` (at the last level
        the output) and as ``x0`` the level's posterior draw :math:`x_0` (data-consistent, not :math:`\hat x_0`)."""
        x_adj, x_init, denoise = self._start(y, physics, generator, x_init)
        tau = measurement_noise(y, physics, self.tau, self.tau_scale, "DAPS")
        self.tau_used = tau.tolist()
        shape = (-1,) + (1,) * (y.ndim - 1)
        sampled = sampled_entries(y, physics)
        sigmas = self.sigmas.tolist()
        x = x_init.clone() if x_init is not None else sigmas[0] * self.noise(x_adj, generator)
        with torch.no_grad():
            for i in progress_bar(range(self.steps), desc=self.name, unit="step", enabled=self.progress, nested=True):
                x0_hat = self._x0_hat(x, sigmas[i], denoise)
                z = x0_hat + sigmas[i] * self.noise(x0_hat, generator)
                y_pert = y + tau.view(shape) * sampled * self.noise(y, generator)
                x0 = self.prox(z, y_pert, physics, gamma=sigmas[i] ** 2 / tau ** 2)
                self._check_finite(x0, i)
                if i == self.steps - 1:
                    self._report(i, sigmas[i], x0, x0)
                    return x0
                x = x0 + sigmas[i + 1] * self.noise(x0, generator)
                self._report(i, sigmas[i], x, x0)


# -- factory (entry point of the ``padis_plugin.solvers`` group) -----------------------------------------------
@dataclass
class DAPSSettings(ScheduleParams):
    """:class:`DAPSExact`'s parameters, same defaults."""

    ode_steps: int = 1
    tau: float | Literal["auto"] = "auto"
    tau_scale: float = 1.0
    cg_iters: int = 20


@dataclass
class DAPSParams(DAPSSettings, PriorChoice):
    """``daps``'s parameters: the sampler's and its prior's (PaDIS or EDM)."""


@takes_params(DAPSParams, "daps", settings=tuned("daps"))
def make_daps(p: DAPSParams, device="cpu") -> DAPSExact:
    """``daps``: DAPS (exact inner step) with the prior of ``checkpoint`` (:class:`DAPSParams`)."""
    return DAPSExact(p.load(device), **values(p, DAPSSettings), device=device)
