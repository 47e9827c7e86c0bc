"""Variance-exploding DPS with Langevin inner iterations: the PaDIS-MRI sampler (Algorithm 1 of the paper).

Algorithm 1 of PaDIS-MRI (arXiv 2509.21531), generic over any deepinv denoiser ``D(x, sigma)``:
:class:`PaDISDPS` runs it with the patch prior, :class:`EDMDPS` with the whole-image FastMRI-EDM prior.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .base import DiffusionSampler, SamplerDivergedError, ScheduleParams  # noqa: F401  (public here too)
from .data_consistency import DPSGradient
from .params import takes_params, values
from .prior_loading import PriorChoice
from .settings import tuned
from ..progress import progress_bar

NoiseConvention = Literal["channel", "complex"]
SkipNoise = Literal["level", "last"]
ScoreFrom = Literal["noisy", "clean"]
PadBand = Literal["fresh", "evolving"]
NOISE_CONVENTIONS, SKIP_NOISE = get_args(NoiseConvention), get_args(SkipNoise)
SCORE_FROM, PAD_BANDS = get_args(ScoreFrom), get_args(PadBand)


class VEDPS(DiffusionSampler):
    r"""Variance-exploding DPS with L Langevin iterations per noise level (PaDIS-MRI Algorithm 1).

    Starting from the warm start :math:`x = A^H y`, for each noise level :math:`\sigma_i` of the schedule
    (``steps`` Karras levels, or the given ``sigmas``) and ``inner`` times per level:

    .. math::

        \tilde x &= x + \sigma\,\varepsilon, \qquad D = D_\theta(\tilde x, \sigma), \qquad
        s = (D - \tilde x)/\sigma^2 \\
        r &= y - A D, \qquad \mathrm{SSE} = \|r\|^2, \qquad
        g = \nabla_x \mathrm{SSE} \ \text{(autograd through the denoiser)} \\
        x &\leftarrow x - \frac{\zeta}{\sqrt{\mathrm{SSE}}}\, g + \frac{\alpha}{2} s + \sqrt{\alpha}\,\xi,
        \qquad \alpha = \sigma^2 / 2

    and the output is the final iterate :math:`x` (not :math:`D`). The data step is
    :class:`~padis_plugin.solvers.data_consistency.DPSGradient`; SSE is per slice, so the slices of a batch
    are independent problems.

    **Noise conventions**, for images stored as (real, imag) channels:

    * ``"channel"`` (default, consistent with how the denoiser is trained and called):
      :math:`\varepsilon, \xi \sim \mathcal N(0, I)` on each channel, so :math:`\tilde x` carries per-channel
      noise std :math:`\sigma` (exactly the level the denoiser is told) and the Langevin noise has
      per-channel std :math:`\sqrt\alpha = \sigma/\sqrt2`.
    * ``"complex"`` (the published code, ``randn_like`` of a complex tensor): :math:`\varepsilon, \xi` have
      per-channel std :math:`1/\sqrt2` (unit complex variance), so :math:`\tilde x` carries per-channel std
      :math:`\sigma/\sqrt2` while the denoiser is told :math:`\sigma`, and the Langevin noise has per-channel
      std :math:`\sigma/2`. Use it to compare with the paper's numbers.

    **Final noise**: ``skip_noise="level"`` (PaDIS-MRI) omits :math:`\xi` in all ``inner`` iterations of the
    last level; ``"last"`` (the published FastMRI-EDM DPS baseline) only in the very last one.

    **Score**: ``score_from="noisy"`` (default, the published code; every number we report uses it) takes
    :math:`s = (D - \tilde x)/\sigma^2`; ``"clean"`` (the paper's Algorithm 1, line 13) takes the pre-noise
    iterate, :math:`s = (D - x)/\sigma^2`.

    **Randomness**: every draw, the denoiser's own (patch offsets) included, comes from ``generator`` (see
    :mod:`padis_plugin.rng`: one generator, or one per slice). The same generator state gives the same output.

    **Guards**: non-finite ``y`` or :math:`A^H y` -> :class:`~padis_plugin.errors.DataError`; a non-finite
    iterate raises :class:`SamplerDivergedError` naming the level and iteration (no silent recovery: a
    diverged chain is not a posterior sample).

    :param deepinv.models.Denoiser denoiser: any denoiser ``D(x, sigma)`` on (B, 2, H, W) images.
    :param int steps: number of noise levels K (104).
    :param int inner: Langevin iterations per level L (10).
    :param float sigma_max: first noise level (10).
    :param float sigma_min: last noise level (0.003).
    :param float rho: schedule exponent (7).
    :param torch.Tensor sigmas: the noise levels themselves (overrides steps, sigma_max, sigma_min, rho).
    :param float zeta: data-consistency step size (3).
    :param str noise_convention: ``"channel"`` or ``"complex"`` (see above).
    :param str skip_noise: ``"level"`` or ``"last"`` (see above).
    :param str score_from: ``"noisy"`` or ``"clean"`` (see above).
    :param bool progress: show a progress bar (on a terminal).
    """

    name = "VEDPS"

    def __init__(self, denoiser, steps=104, inner=10, sigma_max=10.0, sigma_min=0.003, rho=7.0, zeta=3.0,
                 noise_convention="channel", skip_noise="level", score_from="noisy", progress=False, device="cpu",
                 sigmas=None, samples=1, sample_batch=None, rng=None, callback=None):
        if noise_convention not in NOISE_CONVENTIONS:
            raise ConfigError(f"noise_convention must be one of {NOISE_CONVENTIONS}, got {noise_convention!r}")
        if skip_noise not in SKIP_NOISE:
            raise ConfigError(f"skip_noise must be one of {SKIP_NOISE}, got {skip_noise!r}")
        if score_from not in SCORE_FROM:
            raise ConfigError(f"score_from must be one of {SCORE_FROM}, got {score_from!r}")
        if int(inner) != inner or inner < 1:
            raise ConfigError(f"inner must be a positive integer, got {inner}")
        self.data_step = DPSGradient(zeta)  # validates zeta
        super().__init__(denoiser, steps, sigma_max, sigma_min, rho, sigmas=sigmas, progress=progress,
                         device=device, samples=samples, sample_batch=sample_batch,
                         rng=rng, callback=callback)
        self.inner, self.zeta = int(inner), float(zeta)
        self.noise_convention, self.skip_noise, self.score_from = noise_convention, skip_noise, score_from
        warn_if_too_short(self.sigmas, self.inner)

    def sample(self, y, physics, generator=None, x_init=None, **kwargs):
        r"""Run the sampler; returns the final iterate, (B, 2, H, W). The callback (see
        :class:`~.base.DiffusionSampler`) gets, per level, the iterate after its ``inner`` iterations and as
        ``x0`` the denoiser's output :math:`D` of the level's last inner iteration (image part).

        :param torch.Tensor y: measurements, e.g. (B, 2, C, H, W) multi-coil k-space.
        :param deepinv.physics.LinearPhysics physics: forward model :math:`A`.
        :param generator: :class:`torch.Generator`, list of them (one per slice), or ``None`` (global RNG).
        :param x_init: optional warm start tensor (default :math:`A^H y`) or deepinv's shape tuple.
        """
        x_adj, x_init, denoise = self._start(y, physics, generator, x_init, self._sampling_denoiser())
        x = self._lift(x_adj if x_init is None else x_init.clone())
        c = 1.0 if self.noise_convention == "channel" else 1.0 / math.sqrt(2.0)
        bar = progress_bar(total=self.steps * self.inner, desc="VE-DPS", unit="step", enabled=self.progress,
                           nested=True)
        try:
            for i, sigma in enumerate(self.sigmas.tolist()):
                alpha = sigma ** 2 / 2
                bar.set_postfix(sigma=f"{sigma:.4g}")
                for j in range(self.inner):
                    x, d = self._step(x, y, physics, denoise, sigma, alpha, c, generator,
                                      add_noise=self._adds_noise(i, j))
                    self._check_finite(x, i, f", inner iteration {j + 1}/{self.inner}; try a smaller zeta")
                    bar.update(1)
                self._report(i, sigma, self._image(x), self._image(d))
        finally:
            bar.close()
        return self._image(x).detach()

    # The iterate is the image itself; PaDISDPS(pad_band="evolving") overrides these to keep a padded canvas.
    def _sampling_denoiser(self):
        return self.denoiser

    def _lift(self, x):
        """The sampler's iterate for the warm start ``x`` (B, 2, H, W)."""
        return x

    def _image(self, x):
        """The image part of an iterate (or of a denoised iterate)."""
        return x

    def _adds_noise(self, i, j):
        last_level = i == self.steps - 1
        if self.skip_noise == "level":
            return not last_level
        return not (last_level and j == self.inner - 1)

    def _step(self, x, y, physics, denoise, sigma, alpha, c, generator, add_noise):
        """One inner iteration: noise injection, denoise, score, normalised DC step, Langevin step. Returns the
        new iterate and the denoiser's output D (both detached)."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            x_noisy = x + sigma * c * self.noise(x, generator)
            d = denoise(x_noisy, sigma)
            x_dc = self.data_step(self._image(d), y, physics, x=x)
        with torch.no_grad():
            score = (d - (x_noisy if self.score_from == "noisy" else x)) / sigma ** 2  # Alg. 1 line 13: "clean"
            x_new = x_dc + (alpha / 2) * score
            if add_noise:
                x_new = x_new + math.sqrt(alpha) * c * self.noise(x, generator)
        return x_new.detach(), d.detach()


# Measured with the shipped padis-s25 prior on the README's demo slice (R = 4, zero-filled 23.95 dB): 20 x 5 and
# 10 x 10 iterations give 26.3 / 24.5 dB, but 15 x 4, 20 x 3 and 12 x 5 (60 iterations) only 14-16 dB and
# 10 x 3 gives 0.9 dB: with alpha = sigma^2/2 each iteration moves x only a quarter of the way to D, so a chain
# this short has not forgotten its start.
MIN_CONVERGED_ITERATIONS = 80


class ShortScheduleWarning(UserWarning):
    """A VE-DPS schedule with too few iterations to converge."""


def warn_if_too_short(sigmas, inner: int) -> None:
    """Warn when levels x inner iterations are too few for the chain to converge (the output is then noise)."""
    n = len(sigmas) * inner
    if n < MIN_CONVERGED_ITERATIONS:
        warnings.warn(f"VE-DPS schedule too short to converge: {len(sigmas)} levels x {inner} inner iterations "
                      f"= {n} < {MIN_CONVERGED_ITERATIONS}; the output will be mostly noise. Use more steps x "
                      f"inner, or a fast sampler (padis-dds) for a small budget.", ShortScheduleWarning, stacklevel=3)


class PaDISDPS(VEDPS):
    r"""PaDIS-MRI: :class:`VEDPS` with a patch denoiser (:class:`~padis_plugin.prior.PaDISDenoiser`).

    Sets the denoiser's patch size P and padding M (both 64 in the paper: 49 non-overlapping 64 x 64 patches
    per 384 x 384 image with random offsets); ``None`` keeps the denoiser's own, i.e. what its checkpoint
    was trained for. Noise is omitted on the whole last level (``skip_noise="level"``).

    **Pad band** (the tiles reach up to M pixels outside the image):

    * ``pad_band="fresh"`` (default): the iterate is the image; every denoiser call sees the band as fresh
      N(0, sigma^2) noise, what the network saw in training (zero padding + noise).
    * ``"evolving"`` (the paper's Algorithm 1 and the published code): the iterate is the canvas
      padded by M, started from :math:`A^H y` zero-padded; the band is noised, denoised to D = 0, and moved by
      the score, the DC gradient and the Langevin noise like the image; the output is the image part.
    """

    def __init__(self, denoiser, patch_size=None, pad=None, max_batch=None, pad_band="fresh", **kwargs):
        if pad_band not in PAD_BANDS:
            raise ConfigError(f"pad_band must be one of {PAD_BANDS}, got {pad_band!r}")
        kwargs.setdefault("skip_noise", "level")
        super().__init__(patch_denoiser(denoiser, patch_size, pad, max_batch), **kwargs)
        if pad_band == "evolving" and not hasattr(self.denoiser, "denoise_canvas"):
            raise ConfigError(f"pad_band='evolving' needs a patch denoiser, got {type(self.denoiser).__name__}")
        self.pad_band = pad_band

    def _evolving_pad(self):
        return self.denoiser.pad if self.pad_band == "evolving" else 0

    def _sampling_denoiser(self):
        return _CanvasDenoiser(self.denoiser) if self.pad_band == "evolving" else self.denoiser

    def _lift(self, x):
        return F.pad(x, (self._evolving_pad(),) * 4)  # Algorithm 1 warm start: A^H y zero-padded by M

    def _image(self, x):
        M = self._evolving_pad()
        return x[..., M:x.shape[-2] - M, M:x.shape[-1] - M] if M else x


class _CanvasDenoiser(torch.nn.Module):
    """A patch denoiser on the padded canvas iterate: the image estimate, 0 on the band (the published code
    zeroes the pad band after every patch denoising). Takes ``generator`` so
    :func:`padis_plugin.rng.denoise_fn` hands it on."""

    def __init__(self, denoiser):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, canvas, sigma, generator=None):
        return F.pad(self.denoiser.denoise_canvas(canvas, sigma, generator=generator), (self.denoiser.pad,) * 4)


def patch_denoiser(denoiser, patch_size=None, pad=None, max_batch=None):
    """``denoiser`` with patch size P, pad M and chunk size changed (``None`` keeps its own, i.e. what its
    checkpoint was trained for), as a new denoiser sharing the weights: the one given is never changed."""
    if patch_size is None and pad is None and max_batch is None:
        return denoiser
    changes = {k: int(v) for k, v in (("patch_size", patch_size), ("pad", pad), ("max_batch", max_batch))
               if v is not None}
    if not hasattr(denoiser, "with_settings"):
        raise ConfigError(f"patch_size / pad / max_batch need a patch denoiser, got {type(denoiser).__name__}")
    return denoiser.with_settings(**changes)


class EDMDPS(VEDPS):
    r"""FastMRI-EDM DPS baseline : :class:`VEDPS` with a whole-image denoiser
    (:class:`~padis_plugin.prior.EDMDenoiser`); noise omitted only on the very last iteration."""

    def __init__(self, denoiser, **kwargs):
        kwargs.setdefault("skip_noise", "last")
        super().__init__(denoiser, **kwargs)


# -- factory (entry point of the ``padis_plugin.solvers`` group) -----------------------------------------------
@dataclass
class DPSSettings(ScheduleParams):
    """:class:`VEDPS`'s parameters, same defaults."""

    steps: int = 104
    inner: int = 10
    zeta: float = 3.0
    noise_convention: NoiseConvention = "channel"
    skip_noise: SkipNoise = "level"
    score_from: ScoreFrom = "noisy"


@dataclass
class DPSParams(DPSSettings, PriorChoice):
    """``dps``'s parameters: VE-DPS's and its prior's; a PaDIS prior tiles its patches in the sampler
    (Algorithm 1), with ``pad_band`` choosing how the zero-padded band is filled (PaDIS only)."""

    pad_band: PadBand = "fresh"

    def check(self, bad):
        PriorChoice.check(self, bad)
        if self.pad_band != "fresh" and self.checkpoint is not None and not self.family().patches:
            bad.add("pad_band", f"is a setting of the PaDIS patch sampler; {self.checkpoint!r} is a whole-image prior")


@takes_params(DPSParams, "dps", settings=tuned("dps"))
def make_dps(p: DPSParams, device="cpu") -> VEDPS:
    """``dps``: VE-DPS with the prior of ``checkpoint`` (:class:`DPSParams`): PaDIS-MRI patch VE-DPS for a
    PaDIS prior (``patch_size`` and ``pad`` default to the checkpoint's own inference settings; ``score_from``
    ``clean`` is Algorithm 1 line 13; ``pad_band`` ``evolving`` the published padded iterate), the whole-image
    FastMRI-EDM baseline for an EDM prior."""
    settings = values(p, DPSSettings)
    if not p.family().patches:
        return EDMDPS(p.load(device), **settings, device=device)
    den = p.load(device, with_patches=False)
    return PaDISDPS(den, patch_size=p.patch_size, pad=p.pad, max_batch=p.max_batch, pad_band=p.pad_band,
                    **settings, device=device)
