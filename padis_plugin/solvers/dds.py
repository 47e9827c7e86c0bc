r"""DDS, Decomposed Diffusion Sampling (Chung, Lee and Ye, ICLR 2024, Algorithm 1), in variance-exploding form.

Needs only :math:`D(x, \sigma)`: no backpropagation through the network. Per noise level :math:`\sigma_i`:

.. math::

    x_0 = D(x, \sigma_i), \qquad e = (x - x_0)/\sigma_i, \qquad
    \hat x_0 = \mathrm{CG}_m\big[(I + \gamma A^H A)\,u = x_0 + \gamma A^H y;\ u^{(0)} = x_0\big] \\
    x \leftarrow \hat x_0 + \sigma_{i+1}\big(\eta\, n + \sqrt{1 - \eta^2}\, e\big), \qquad n \sim \mathcal N(0, I)

and :math:`\hat x_0` of the last level is the output. With a measurement-noise level :math:`\tau` given
(``tau``), the data weight follows the noise level, :math:`\gamma_i = \min(\gamma, \sigma_i^2/\tau^2)`: the MAP
weight when the denoised estimate is off by about :math:`\sigma_i` and the data by :math:`\tau`. A constant
:math:`\gamma` fits the measurement noise once :math:`\sigma_i` falls below :math:`\sqrt\gamma\,\tau`.
The CG early stop (m iterations from :math:`x_0`) is part of the method: it keeps the update in the Krylov
subspace around the denoised estimate. Unlike the published
code, the CG here is Hermitian and :math:`A^H y` enters the right-hand side as one complex image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal, get_args

import torch

from ..errors import ConfigError
from .base import DiffusionSampler, ScheduleParams
from ..prior.hfs import check_band_width, high_pass
from .data_consistency import make_data_consistency
from .hfs_band import high_band_start
from .noise_level import check_tau, measurement_noise
from .params import takes_params, values
from .prior_loading import PriorChoice
from .settings import family_settings, tuned
from ..progress import progress_bar

Start = Literal["noise", "adjoint"]
STARTS = get_args(Start)


TUNED_VALUE = "tuned"  # DDS's tau default: the tuned value of the denoiser's family (None: a constant gamma)
_FALLBACK = {"gamma": 100.0, "tau": None, "tau_scale": 1.0}


def _family_defaults(denoiser, data_consistency, **given) -> tuple:
    """``(gamma, tau, tau_scale)``: each given value, else the tuned one of the denoiser's family (its ``kind``),
    else the plain DDS fallback."""
    tuned = family_settings(denoiser, "dds") if data_consistency == "prox" else {}
    unset = {"gamma": None, "tau": TUNED_VALUE, "tau_scale": None}
    return tuple(given[k] if given[k] != unset[k] else tuned.get(k, _FALLBACK[k])
                 for k in ("gamma", "tau", "tau_scale"))


class DDS(DiffusionSampler):
    r"""DDS sampler on any deepinv denoiser and any :class:`~deepinv.physics.LinearPhysics`.

    :param denoiser: ``D(x, sigma)`` on (B, 2, H, W) images (:class:`~padis_plugin.prior.PaDISDenoiser`,
        :class:`~padis_plugin.prior.EDMDenoiser` or any deepinv denoiser).
    :param int steps: noise levels K = network calls (50); or give ``sigmas``.
    :param float sigma_max, sigma_min, rho: the Karras schedule (10, 0.003, 7: the prior's PaDIS-MRI range).
    :param float eta: share of fresh noise in the re-noising (1, tuned: fresh noise at every level; 0:
        deterministic DDIM; published DDS: 0.85).
    :param float gamma: data weight of the proximal step (100, tuned on the validation patients for data
        normalised as ``padis-prepare`` does; published DDS: 1, which balances prior and data for unit-RSS coil
        maps and an orthonormal FFT, where :math:`\|A^H A\| \le 1`).
    :param int cg_iters: CG iterations per level m (5; 0 disables data consistency).
    :param str data_consistency: ``"prox"`` (above) or ``"projection"`` (noiseless: CG on
        :math:`A^H A u = A^H y` from :math:`x_0`).
    :param str start: ``"noise"`` (:math:`\sigma_0 n`, DDS) or ``"adjoint"`` (:math:`A^H y + \sigma_0 n`).
    :param tau: None (constant ``gamma``, as DDS) or the measurement noise std per real channel, a float or
        ``"auto"`` (estimated per slice from the k-space corners): the data weight is then
        :math:`\min(\gamma, \sigma_i^2/(\text{tau_scale}\,\tau)^2)`.
    :param float tau_scale: multiplies ``tau``.

    ``gamma``, ``tau`` and ``tau_scale`` left out take the tuned settings of the denoiser's prior family (its
    ``kind``; :data:`padis_plugin.solvers.settings.TUNED`, as the registered ``dds`` does): PaDIS ``tau="auto"``,
    ``tau_scale=0.25``; EDM ``tau="auto"``, ``tau_scale=0.5``; HFS ``gamma=30``. For any other denoiser (or with
    ``data_consistency="projection"``): ``gamma=100``, a constant weight (``tau=None``), ``tau_scale=1``.
    :param high_band: for an HFS prior (trained with noise :math:`\sigma Q n` only): the low-band width
        :math:`m_{lf}` (an int, or True: the grid's default, 16/320 of the width). Every re-noising term is then
        projected onto :math:`Q`, and the ``"noise"`` start is the measured low band plus :math:`\sigma_0 Q n`,
        so the iterate has the noise the prior was trained on. None (default): noise in the whole image.
    """

    name = "DDS"

    def __init__(self, denoiser, steps=50, sigma_max=10.0, sigma_min=0.003, rho=7.0, sigmas=None, eta=1.0,
                 gamma=None, cg_iters=5, data_consistency="prox", start="noise", tau=TUNED_VALUE, tau_scale=None,
                 high_band=None, progress=False, device="cpu", samples=1, sample_batch=None, rng=None,
                 callback=None):
        gamma, tau, tau_scale = _family_defaults(denoiser, data_consistency, gamma=gamma, tau=tau,
                                                 tau_scale=tau_scale)
        if not 0.0 <= eta <= 1.0:
            raise ConfigError(f"DDS: eta must be in [0, 1], got {eta}")
        if start not in STARTS:
            raise ConfigError(f"DDS: start must be one of {STARTS}, got {start!r}")
        if data_consistency not in ("prox", "projection"):
            raise ConfigError(f"DDS: data_consistency must be 'prox' or 'projection', got {data_consistency!r}")
        check_tau(tau, tau_scale, "DDS", allow_none=True)
        if tau is not None and data_consistency != "prox":
            raise ConfigError("DDS: tau (a noise-aware data weight) needs data_consistency='prox'")
        super().__init__(denoiser, steps, sigma_max, sigma_min, rho, sigmas=sigmas, progress=progress,
                         device=device, samples=samples, sample_batch=sample_batch,
                         rng=rng, callback=callback)
        self.eta, self.gamma, self.cg_iters, self.start = float(eta), float(gamma), int(cg_iters), start
        self.data_step = make_data_consistency(data_consistency, gamma=gamma, iters=cg_iters)
        self.tau, self.tau_scale = tau, float(tau_scale)
        if high_band is not None and start != "noise":
            raise ConfigError("DDS: an HFS prior (high_band) starts from its measured low band: use start='noise'")
        self.high_band = high_band

    def _band(self, width: int) -> int:
        return check_band_width(None if self.high_band is True else self.high_band, width)

    def _renoise(self, z):
        """The re-noising term as the prior was trained: all of it, or its high band only (HFS)."""
        return z if self.high_band is None else high_pass(z, self._band(z.shape[-1]))

    def _data_weights(self, y, physics, sigmas):
        """Per level, the (B,) data weights min(gamma, sigma_i^2 / tau^2); None for the constant gamma."""
        if self.tau is None:
            return None
        tau = measurement_noise(y, physics, self.tau, self.tau_scale, self.name)
        return [torch.clamp(s ** 2 / tau ** 2, max=self.gamma) for s in sigmas]

    def sample(self, y, physics, generator=None, x_init=None, **kwargs):
        r"""Sample; returns the data-consistent denoised estimate of the last level, (B, 2, H, W). The callback
        (see :class:`~.base.DiffusionSampler`) gets, per level, the re-noised iterate for the next level (at the
        last level the output) and as ``x0`` the data-consistent estimate :math:`\hat x_0`."""
        x_adj, x_init, denoise = self._start(y, physics, generator, x_init)
        sigmas = self.sigmas.tolist()
        weights = self._data_weights(y, physics, sigmas)
        if x_init is not None:
            x = x_init.clone()
        elif self.high_band is not None:
            x = high_band_start(y, physics, self._band(y.shape[-1]), sigmas[0],
                                lambda z: self.noise(z, generator), self.name)
        else:
            x = sigmas[0] * self.noise(x_adj, generator) + (x_adj if self.start == "adjoint" else 0.0)
        keep = math.sqrt(1.0 - self.eta ** 2)
        with torch.no_grad():
            for i in progress_bar(range(self.steps), desc=self.name, unit="step", enabled=self.progress, nested=True):
                x0 = denoise(x, sigmas[i])
                x0c = self.data_step(x0, y, physics) if weights is None else \
                    self.data_step(x0, y, physics, gamma=weights[i])
                self._check_finite(x0c, i)
                if i == self.steps - 1:
                    self._report(i, sigmas[i], x0c, x0c)
                    return x0c
                fresh = self.eta * self.noise(x, generator) if self.eta > 0 else 0.0
                kept = keep * ((x - x0) / sigmas[i]) if keep > 0 else 0.0  # eta = 1: no reuse of the noise estimate
                x = x0c + sigmas[i + 1] * self._renoise(fresh + kept)
                self._report(i, sigmas[i], x, x0c)


# -- factory (entry point of the ``padis_plugin.solvers`` group) -----------------------------------------------
# The sampler's own settings; a config's defaults are the tuned ones of its prior family (solvers/settings.py).
@dataclass
class DDSSettings(ScheduleParams):
    eta: float = 1.0                      # tuned (published DDS: 0.85)
    gamma: float = 100.0                  # tuned (published DDS: 1)
    cg_iters: int = 5
    data_consistency: Literal["prox", "projection"] = "prox"
    start: Start = "noise"
    # "off" (or None in Python): constant gamma (DDS); "auto" or a number: the noise-aware weight
    # min(gamma, sigma_i^2 / tau^2)
    tau: float | Literal["auto", "off"] | None = field(default=None, metadata={"default": "off (a constant gamma)"})
    tau_scale: float = 1.0


@dataclass
class DDSParams(DDSSettings, PriorChoice):
    """``dds``'s parameters: the sampler's and its prior's (PaDIS, EDM, or HFS re-noising only the high band)."""

    FAMILIES: ClassVar[tuple[str, ...]] = ("padis", "edm", "hfs", "patch-hfs")

    def check(self, bad):
        PriorChoice.check(self, bad)
        if self.start != "noise" and self.checkpoint is not None and self.family().hfs:
            bad.add("start", "an HFS prior starts from its measured low band: only 'noise' applies")


@takes_params(DDSParams, "dds", settings=tuned("dds"))
def make_dds(p: DDSParams, device="cpu") -> DDS:
    """``dds``: DDS with the prior of ``checkpoint`` (:class:`DDSParams`); an HFS prior re-noises only its
    high band (``band_width``: the checkpoint's own unless given)."""
    den = p.load(device)
    settings = values(p, DDSSettings)
    settings["tau"] = None if p.tau == "off" else p.tau
    if not p.family().hfs:
        return DDS(den, **settings, device=device)
    band = p.band_width if p.band_width is not None else den.band_width
    return DDS(den, **settings, high_band=True if band is None else band, device=device)
