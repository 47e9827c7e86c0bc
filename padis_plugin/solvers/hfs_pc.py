r"""HFS-SDE predictor-corrector sampler (Cao et al., IEEE TMI 2024, arXiv 2208.05481; Song et al. 2021,
Algorithm 2) in variance-exploding coordinates, with a normalised data-consistency term.

With :math:`Q` the high-frequency projector of the prior's band (:mod:`padis_plugin.prior.hfs`),
:math:`\hat g(u) = A^H(Au - y)/\lVert A^H(Au - y)\rVert` and the score
:math:`s_i(u) = Q\,(D(u, \sigma_i) - u)/\sigma_i^2`, start from :math:`u = A^H(m_{lf} \odot y) + \sigma_0 Q z`
(the measured low band) and per level :math:`i` (:math:`\sigma_N = 0`):

.. math::

    \text{corrector:}\quad \epsilon = 2\,(\mathrm{snr}\,\lVert n\rVert / \lVert s_i\rVert)^2,\quad
    u \leftarrow u + \epsilon\,(s_i - c\,\lVert s_i\rVert\,\hat g) + \sqrt{2\epsilon}\,Q n \\
    \text{predictor:}\quad \bar u = u + (\sigma_i^2 - \sigma_{i+1}^2)(s_i - m\,\lVert s_i\rVert\,\hat g),\quad
    u \leftarrow \bar u + \sqrt{\sigma_i^2 - \sigma_{i+1}^2}\,Q z

with :math:`c` = ``corrector_mse``, :math:`m` = ``mse``; the output is the last :math:`\bar u`. Two network
calls per level. ``project_score=False`` is the released predictor, whose score is not projected onto
:math:`Q` (so the low band drifts). Norms are per slice (the released code averages them over the batch).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from ..errors import ConfigError
from ..prior.hfs import check_band_width, high_pass
from ..prior.schedules import hfs_vp_sigmas
from .base import DiffusionSampler, ScheduleParams
from .hfs_band import high_band_start
from .params import takes_params
from .prior_loading import PriorChoice
from .settings import tuned
from ..progress import progress_bar


def _norm(x: torch.Tensor) -> torch.Tensor:
    """Per-slice L2 norm, shaped to broadcast over (B, ...)."""
    return torch.linalg.vector_norm(x.flatten(1), dim=1).reshape(-1, *([1] * (x.ndim - 1)))


class HFSPC(DiffusionSampler):
    r"""HFS-SDE predictor-corrector on any deepinv denoiser and any :class:`~deepinv.physics.LinearPhysics`
    whose measurements are k-space (B, 2, [C,] H, W) with phase-encode columns on the last axis.

    :param denoiser: ``D(x, sigma)`` on (B, 2, H, W), trained with noise in the high band
        (:class:`~padis_plugin.prior.HFSDenoiser`, :class:`~padis_plugin.prior.PatchHFSDenoiser`).
    :param int band_width: low-band columns :math:`m_{lf}`; None: the denoiser's ``band_width`` (its
        checkpoint's), else the grid's default. The sampling mask must sample every column of the band.
    :param int steps, sigma_max, sigma_min, rho, sigmas: the noise levels (Karras schedule by default; e.g.
        :func:`~padis_plugin.prior.schedules.hfs_vp_sigmas` for the released VP time grid).
    :param float snr: corrector signal-to-noise ratio: 0.32, tuned on the validation patients for 100 levels
        (experiments/256_hfs_tuning: 26.80 dB against 26.28 at the released 0.16).
    :param float mse: predictor data weight (2.5 released).
    :param float corrector_mse: corrector data weight (0.1 released).
    :param bool project_score: project the predictor's score onto :math:`Q` (the released code does not).
    """

    name = "HFS-PC"

    def __init__(self, denoiser, steps=100, sigma_max=10.0, sigma_min=0.003, rho=7.0, sigmas=None, snr=0.32,
                 mse=2.5, corrector_mse=0.1, project_score=True, band_width=None, progress=False, device="cpu",
                 samples=1, sample_batch=None, rng=None, callback=None):
        for key, v in (("snr", snr), ("mse", mse), ("corrector_mse", corrector_mse)):
            if not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"{self.name}: {key} must be a finite number >= 0, got {v}")
        super().__init__(denoiser, steps, sigma_max, sigma_min, rho, sigmas=sigmas, progress=progress,
                         device=device, samples=samples, sample_batch=sample_batch,
                         rng=rng, callback=callback)
        self.snr, self.mse, self.corrector_mse = float(snr), float(mse), float(corrector_mse)
        self.project_score = bool(project_score)
        self.band_width = band_width if band_width is not None else getattr(denoiser, "band_width", None)

    def band(self, width: int) -> int:
        return check_band_width(self.band_width, width)

    def _data_direction(self, u, y, physics):
        """:math:`\\hat g(u)`, zero where the residual is zero."""
        g = physics.A_adjoint(physics.A(u) - y)
        return g / _norm(g).clamp_min(1e-30)

    def initial(self, y, physics, generator=None):
        """The start :math:`A^H(m_{lf} \\odot y) + \\sigma_0 Q z` (B, 2, H, W)."""
        return high_band_start(y, physics, self.band(y.shape[-1]), float(self.sigmas[0]),
                               lambda x: self.noise(x, generator), self.name)

    def sample(self, y, physics, generator=None, x_init=None, **kwargs):
        r"""Sample; returns the last predictor mean (B, 2, H, W). The callback (see
        :class:`~.base.DiffusionSampler`) gets, per level, the iterate :math:`u` after the predictor (at the last
        level the output :math:`\bar u`) and as ``x0`` the predictor's denoiser output :math:`D(u, \sigma_i)`."""
        _, x_init, denoise = self._start(y, physics, generator, x_init)
        w = self.band(y.shape[-1])
        u = x_init.clone() if x_init is not None else self.initial(y, physics, generator)
        sig = self.sigmas.tolist() + [0.0]
        with torch.no_grad():
            for i in progress_bar(range(self.steps), desc=self.name, unit="step", enabled=self.progress, nested=True):
                s2 = sig[i] ** 2
                # corrector: annealed Langevin in the high band
                score = high_pass(denoise(u, sig[i]) - u, w) / s2
                n = self.noise(u, generator)
                eps = 2 * (self.snr * _norm(n) / _norm(score).clamp_min(1e-30)) ** 2
                drift = score - self.corrector_mse * _norm(score) * self._data_direction(u, y, physics)
                u = u + eps * drift + (2 * eps).sqrt() * high_pass(n, w)
                # predictor: reverse-diffusion step of the VE SDE
                d = denoise(u, sig[i])
                score = d - u
                score = (high_pass(score, w) if self.project_score else score) / s2
                step = s2 - sig[i + 1] ** 2
                u_mean = u + step * (score - self.mse * _norm(score) * self._data_direction(u, y, physics))
                self._check_finite(u_mean, i)
                if i == self.steps - 1:
                    self._report(i, sig[i], u_mean, d)
                    return u_mean
                u = u_mean + math.sqrt(step) * high_pass(self.noise(u, generator), w)
                self._report(i, sig[i], u, d)


# -- factory (entry point of the ``padis_plugin.solvers`` group) ---------------------------------------------
@dataclass
class HFSPCSettings(ScheduleParams):
    """The predictor-corrector's parameters: the released HFS-SDE values, but the corrector's snr tuned for 100
    levels (experiments/256_hfs_tuning)."""

    steps: int = 100
    schedule: Literal["karras", "vp"] = "karras"   # vp: the released VP time grid mapped to sigma (~152 .. 0.01)
    snr: float = 0.32
    mse: float = 2.5
    corrector_mse: float = 0.1
    project_score: bool = True


@dataclass
class HFSPCParams(HFSPCSettings, PriorChoice):
    """``hfs-pc``'s parameters: the sampler's and its HFS prior's (patch settings for a ``patch-hfs`` one)."""

    FAMILIES: ClassVar[tuple[str, ...]] = ("hfs", "patch-hfs")  # steps, snr, mse: params.LIMITS


@takes_params(HFSPCParams, "hfs-pc", settings=tuned("hfs-pc"))
def make_hfs_pc(p: HFSPCParams, device="cpu") -> HFSPC:
    """``hfs-pc``: HFS-SDE predictor-corrector with an HFS prior (``hfs`` or ``patch-hfs`` checkpoint)."""
    den = p.load(device)
    sigmas = hfs_vp_sigmas(p.steps) if p.schedule == "vp" else None
    return HFSPC(den, steps=p.steps, sigma_max=p.sigma_max, sigma_min=p.sigma_min, rho=p.rho, sigmas=sigmas,
                 snr=p.snr, mse=p.mse, corrector_mse=p.corrector_mse, project_score=p.project_score,
                 band_width=p.band_width, progress=p.progress, device=device, samples=p.samples,
                 sample_batch=p.sample_batch)
