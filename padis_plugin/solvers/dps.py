"""Variance-exploding DPS with Langevin inner iterations: the PaDIS-MRI sampler (spec section 4.2).

Algorithm 1 of PaDIS-MRI (arXiv 2509.21531), generic over any deepinv denoiser ``D(x, sigma)``:
:class:`PaDISDPS` runs it with the patch prior, :class:`EDMDPS` with the whole-image FastMRI-EDM prior.
"""
from __future__ import annotations

import inspect
import math

import torch
from deepinv.models import Reconstructor
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError
from .params import check_params
from ..prior.schedules import edm_sigmas

NOISE_CONVENTIONS = ("channel", "complex")
SKIP_NOISE = ("level", "last")


class SamplerDivergedError(RuntimeError):
    """The sampler's iterate became non-finite (NaN/Inf), usually from too large a step ``zeta``."""


class VEDPS(Reconstructor):
    r"""Variance-exploding DPS with L Langevin iterations per noise level (PaDIS-MRI Algorithm 1, spec §4.2).

    Starting from the warm start :math:`x = A^H y`, for each noise level :math:`\sigma_i` of
    :func:`~padis_plugin.prior.schedules.edm_sigmas` (``steps`` levels) and ``inner`` times per level:

    .. math::

        \tilde x &= x + \sigma\,\varepsilon, \qquad D = D_\theta(\tilde x, \sigma), \qquad
        s = (D - \tilde x)/\sigma^2 \\
        r &= y - A D, \qquad \mathrm{SSE} = \|r\|^2, \qquad
        g = \nabla_x \mathrm{SSE} \ \text{(autograd through the denoiser)} \\
        x &\leftarrow x - \frac{\zeta}{\sqrt{\mathrm{SSE}}}\, g + \frac{\alpha}{2} s + \sqrt{\alpha}\,\xi,
        \qquad \alpha = \sigma^2 / 2

    and the output is the final iterate :math:`x` (not :math:`D`). SSE is per slice, so the slices of a batch
    are independent problems.

    **Noise conventions** (spec §4.2 b, g and §6.9), for images stored as (real, imag) channels:

    * ``"channel"`` (default, consistent with how the denoiser is trained and called):
      :math:`\varepsilon, \xi \sim \mathcal N(0, I)` on each channel, so :math:`\tilde x` carries per-channel
      noise std :math:`\sigma` (exactly the level the denoiser is told) and the Langevin noise has
      per-channel std :math:`\sqrt\alpha = \sigma/\sqrt2`.
    * ``"complex"`` (the published code, ``randn_like`` of a complex tensor): :math:`\varepsilon, \xi` have
      per-channel std :math:`1/\sqrt2` (unit complex variance), so :math:`\tilde x` carries per-channel std
      :math:`\sigma/\sqrt2` while the denoiser is told :math:`\sigma`, and the Langevin noise has per-channel
      std :math:`\sigma/2`. Use it to compare with the paper's numbers.

    **Final noise**: ``skip_noise="level"`` (PaDIS-MRI) omits :math:`\xi` in all ``inner`` iterations of the
    last level; ``"last"`` (the published FastMRI-EDM DPS baseline, spec §4.3) only in the very last one.

    **Randomness**: every random draw comes from ``generator`` (a :class:`torch.Generator`, or one per slice
    in a list: then slice ``b`` only uses ``generator[b]``, so a batch equals separate runs). A denoiser with
    its own randomness (patch offsets) gets the generator (the first one of a list) through
    ``set_generator`` or a ``generator=`` keyword of its forward. The same generator state gives the same
    output.

    **Guards**: non-finite ``y`` or :math:`A^H y` -> :class:`~padis_plugin.errors.DataError`; SSE = 0 (the
    data are matched exactly) skips the data step for that slice instead of dividing by zero; a non-finite
    iterate raises :class:`SamplerDivergedError` naming the level and iteration (no silent recovery: a
    diverged chain is not a posterior sample).

    :param deepinv.models.Denoiser denoiser: any denoiser ``D(x, sigma)`` on (B, 2, H, W) images.
    :param int steps: number of noise levels K (104).
    :param int inner: Langevin iterations per level L (10).
    :param float sigma_max: first noise level (10).
    :param float sigma_min: last noise level (0.003).
    :param float rho: schedule exponent (7).
    :param float zeta: data-consistency step size (3).
    :param str noise_convention: ``"channel"`` or ``"complex"`` (see above).
    :param str skip_noise: ``"level"`` or ``"last"`` (see above).
    :param bool progress: show a tqdm bar.
    """

    def __init__(self, denoiser, steps=104, inner=10, sigma_max=10.0, sigma_min=0.003, rho=7.0, zeta=3.0,
                 noise_convention="channel", skip_noise="level", progress=True, device="cpu"):
        super().__init__(device=device)
        if noise_convention not in NOISE_CONVENTIONS:
            raise ConfigError(f"noise_convention must be one of {NOISE_CONVENTIONS}, got {noise_convention!r}")
        if skip_noise not in SKIP_NOISE:
            raise ConfigError(f"skip_noise must be one of {SKIP_NOISE}, got {skip_noise!r}")
        if int(inner) != inner or inner < 1:
            raise ConfigError(f"inner must be a positive integer, got {inner}")
        if zeta < 0:
            raise ConfigError(f"zeta must be >= 0, got {zeta}")
        self.sigmas = edm_sigmas(steps, sigma_max, sigma_min, rho)  # validates K, sigmas, rho
        self.denoiser = denoiser
        self.steps, self.inner = int(steps), int(inner)
        self.sigma_max, self.sigma_min, self.rho, self.zeta = sigma_max, sigma_min, rho, float(zeta)
        self.noise_convention, self.skip_noise, self.progress = noise_convention, skip_noise, progress
        self.nfe = 0

    # -- randomness -------------------------------------------------------------------------------------
    @staticmethod
    def _randn(shape, generator, device, dtype):
        """Standard normal of ``shape``; with a list of generators, slice b is drawn from generator b."""
        if generator is None:
            return torch.randn(shape, device=device, dtype=dtype)
        if isinstance(generator, torch.Generator):
            return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)
        return torch.cat([torch.randn((1, *shape[1:]), generator=g, device=g.device, dtype=dtype).to(device)
                          for g in generator])

    def _denoise_fn(self, generator):
        """Callable ``(x, sigma) -> D`` that routes the sampler's generator to a random denoiser."""
        den = self.denoiser
        g = generator[0] if isinstance(generator, (list, tuple)) else generator
        if hasattr(den, "set_generator"):
            den.set_generator(g)
            return den
        try:
            takes_gen = "generator" in inspect.signature(getattr(den, "forward", den)).parameters
        except (TypeError, ValueError):
            takes_gen = False
        if takes_gen and g is not None:
            return lambda x, sigma: den(x, sigma, generator=g)
        return den

    # -- the sampler --------------------------------------------------------------------------------------
    def forward(self, y, physics, generator=None, x_init=None, **kwargs):
        r"""Run the sampler; returns the final iterate, (B, 2, H, W).

        :param torch.Tensor y: measurements, e.g. (B, 2, C, H, W) multi-coil k-space.
        :param deepinv.physics.LinearPhysics physics: forward model :math:`A`.
        :param generator: :class:`torch.Generator`, list of them (one per slice), or ``None`` (global RNG).
        :param torch.Tensor x_init: optional warm start (default :math:`A^H y`).
        """
        if not torch.isfinite(y).all():
            raise DataError("VEDPS: the measurements y hold non-finite values")
        with torch.no_grad():
            x = physics.A_adjoint(y) if x_init is None else x_init.clone()
        if not torch.isfinite(x).all():
            raise DataError("VEDPS: the warm start A^H y is non-finite (bad coil maps, mask or x_init)")
        if isinstance(generator, (list, tuple)) and len(generator) != x.shape[0]:
            raise ConfigError(f"VEDPS: got {len(generator)} generators for a batch of {x.shape[0]}")
        denoise = self._denoise_fn(generator)
        c = 1.0 if self.noise_convention == "channel" else 1.0 / math.sqrt(2.0)
        bshape = (-1,) + (1,) * (x.ndim - 1)
        self.nfe = 0
        total = self.steps * self.inner
        bar = tqdm(total=total, desc="VE-DPS", disable=not self.progress, leave=False)
        try:
            for i, sigma in enumerate(self.sigmas.tolist()):
                alpha = sigma ** 2 / 2
                bar.set_postfix(sigma=f"{sigma:.4g}")
                for j in range(self.inner):
                    x = self._step(x, y, physics, denoise, sigma, alpha, c, generator, bshape,
                                   add_noise=self._adds_noise(i, j))
                    if not torch.isfinite(x).all():
                        raise SamplerDivergedError(
                            f"VEDPS: the iterate became non-finite at noise level {i + 1}/{self.steps} "
                            f"(sigma={sigma:.4g}), inner iteration {j + 1}/{self.inner}; try a smaller zeta")
                    bar.update(1)
        finally:
            bar.close()
        return x.detach()

    def _adds_noise(self, i, j):
        last_level = i == self.steps - 1
        if self.skip_noise == "level":
            return not last_level
        return not (last_level and j == self.inner - 1)

    def _step(self, x, y, physics, denoise, sigma, alpha, c, generator, bshape, add_noise):
        """One inner iteration: noise injection, denoise, score, normalised DC step, Langevin step."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            x_noisy = x + sigma * c * self._randn(x.shape, generator, x.device, x.dtype)
            d = denoise(x_noisy, sigma)
            self.nfe += 1
            r = y - physics.A(d)
            sse = r.pow(2).flatten(1).sum(1)  # per slice
            (g,) = torch.autograd.grad(sse.sum(), x)  # slices are independent: grad of the sum = per-slice grads
        with torch.no_grad():
            # zeta * grad(SSE)/sqrt(SSE); where SSE == 0 the data are matched and g == 0: skip the step
            coef = torch.where(sse > 0, self.zeta / sse.clamp_min(torch.finfo(sse.dtype).tiny).sqrt(),
                               torch.zeros_like(sse))
            score = (d - x_noisy) / sigma ** 2
            x_new = x - coef.view(bshape) * g + (alpha / 2) * score
            if add_noise:
                x_new = x_new + math.sqrt(alpha) * c * self._randn(x.shape, generator, x.device, x.dtype)
        return x_new.detach()


class PaDISDPS(VEDPS):
    r"""PaDIS-MRI: :class:`VEDPS` with a patch denoiser (:class:`~padis_plugin.prior.PaDISDenoiser`).

    Sets the denoiser's patch size P and padding M (both 64 in the paper: 49 non-overlapping 64 x 64 patches
    per 384 x 384 image with random offsets); ``None`` keeps the denoiser's own, i.e. what its checkpoint
    was trained for. Noise is omitted on the whole last level (``skip_noise="level"``).
    """

    def __init__(self, denoiser, patch_size=None, pad=None, max_batch=None, **kwargs):
        kwargs.setdefault("skip_noise", "level")
        super().__init__(denoiser, **kwargs)
        patch_size = denoiser.patch_size if patch_size is None else patch_size
        pad = denoiser.pad if pad is None else pad
        multiple = getattr(getattr(getattr(denoiser, "precond", None), "unet", None), "multiple", 1)
        if int(patch_size) < 1 or int(patch_size) % multiple or int(pad) < 0:
            raise ConfigError(f"patch_size must be a positive multiple of {multiple} and pad >= 0, "
                              f"got patch_size={patch_size}, pad={pad}")
        denoiser.patch_size, denoiser.pad = int(patch_size), int(pad)
        if max_batch is not None:
            denoiser.max_batch = int(max_batch)


class EDMDPS(VEDPS):
    r"""FastMRI-EDM DPS baseline (spec §4.3): :class:`VEDPS` with a whole-image denoiser
    (:class:`~padis_plugin.prior.EDMDenoiser`); noise omitted only on the very last iteration."""

    def __init__(self, denoiser, **kwargs):
        kwargs.setdefault("skip_noise", "last")
        super().__init__(denoiser, **kwargs)


# -- factories (entry points of the ``padis_plugin.solvers`` group) ------------------------------------------
_COMMON = {"checkpoint", "steps", "inner", "sigma_max", "sigma_min", "rho", "zeta", "noise_convention",
           "skip_noise", "progress"}
PADIS_PARAMS = _COMMON | {"pad", "patch_size", "max_batch", "position_convention", "canvas_pad"}
EDM_PARAMS = _COMMON | {"max_batch"}
_SAMPLER_KEYS = ("steps", "inner", "sigma_max", "sigma_min", "rho", "zeta", "noise_convention", "skip_noise",
                 "progress")


def _sampler_kwargs(params, device):
    kw = {k: params[k] for k in _SAMPLER_KEYS if k in params}
    for k in ("steps", "inner"):
        if k in kw:
            kw[k] = int(kw[k])
    for k in ("sigma_max", "sigma_min", "rho", "zeta"):
        if k in kw:
            kw[k] = float(kw[k])
    return dict(kw, device=device)


def _load(kind, checkpoint, device, **overrides):
    from ..prior import EDMDenoiser, PaDISDenoiser  # prior/ sits below solvers/

    cls = PaDISDenoiser if kind == "padis" else EDMDenoiser
    den = cls.from_pretrained(checkpoint, device=device, **overrides)
    return den.to(device).eval().requires_grad_(False)  # gradients flow to x only, never to the weights


def make_padis_dps(params: dict | None = None, device="cpu") -> PaDISDPS:
    """``padis-dps``: PaDIS-MRI patch VE-DPS. Keys: checkpoint (path or shipped name, default
    ``padis-s25``), steps, inner, sigma_max, sigma_min, rho, zeta, pad, patch_size, noise_convention,
    skip_noise, max_batch, progress, position_convention, canvas_pad (the last two: see PaDISDenoiser).
    ``patch_size`` and ``pad`` default to the checkpoint's own inference settings."""
    p = check_params("padis-dps", params, PADIS_PARAMS)
    overrides = {k: p[k] for k in ("position_convention", "canvas_pad") if k in p}
    den = _load("padis", p.get("checkpoint", "padis-s25"), device, **overrides)
    return PaDISDPS(den, patch_size=p.get("patch_size"), pad=p.get("pad"), max_batch=p.get("max_batch"),
                    **_sampler_kwargs(p, device))


def make_edm_dps(params: dict | None = None, device="cpu") -> EDMDPS:
    """``edm-dps``: whole-image FastMRI-EDM VE-DPS baseline. Keys: checkpoint (default ``edm-s25``), steps,
    inner, sigma_max, sigma_min, rho, zeta, noise_convention, skip_noise, max_batch, progress."""
    p = check_params("edm-dps", params, EDM_PARAMS)
    den = _load("edm", p.get("checkpoint", "edm-s25"), device)
    if p.get("max_batch") is not None and hasattr(den, "max_batch"):
        den.max_batch = int(p["max_batch"])
    return EDMDPS(den, **_sampler_kwargs(p, device))
