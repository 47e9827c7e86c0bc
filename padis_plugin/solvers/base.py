"""Parts every diffusion sampler shares: the noise schedule (given or built), input guards, the network-call
count, the warm start and the per-step callback. A sampler is a :class:`deepinv.models.Reconstructor` called as
``sampler(y, physics, generator=None, x_init=None)``; after a call ``nfe`` holds its number of network calls."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from deepinv.models import Reconstructor

from ..errors import ConfigError, DataError, PadisError
from ..prior.schedules import edm_sigmas
from ..rng import check_batch, denoise_fn, randn
from .sample_mean import SampleMean


class SamplerDivergedError(PadisError, RuntimeError):
    """The sampler's iterate became non-finite (NaN/Inf), usually from too large a data-consistency step."""


def as_sigmas(sigmas) -> torch.Tensor:
    """A given schedule as a float64 1-D tensor of positive, non-increasing levels."""
    s = torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1).clone()
    if s.numel() < 1 or not torch.isfinite(s).all() or (s <= 0).any() or (s[1:] > s[:-1]).any():
        raise ConfigError(f"sigmas must be a non-empty, positive, non-increasing sequence, got {s.tolist()}")
    return s


@dataclass
class ScheduleParams:
    """Factory parameters every sampler shares: the Karras schedule and the progress bar."""

    steps: int = 50
    sigma_max: float = 10.0
    sigma_min: float = 0.003
    rho: float = 7.0
    progress: bool = False
    samples: int = 1            # posterior samples per call; their mean is returned (see solvers/sample_mean.py)
    sample_batch: int | None = field(default=None, metadata={"default": "all samples in one batch"})


class DiffusionSampler(SampleMean, Reconstructor):
    """Base of the samplers: ``sigmas`` (a tensor, e.g. a slice of a longer schedule) or the Karras schedule
    :func:`~padis_plugin.prior.schedules.edm_sigmas` of ``steps`` levels from ``sigma_max`` to ``sigma_min``.
    Subclasses implement one draw as ``sample(y, physics, generator=None, x_init=None)``; calling the sampler
    returns the mean of ``samples`` draws (:class:`~.sample_mean.SampleMean`).

    **Callback** (as k-diffusion's samplers take one): ``callback(step, sigma, x, x0)`` is called once per noise
    level, after that level's update, with ``step`` the 0-based level index (0 .. ``steps`` - 1, increasing),
    ``sigma`` that level's noise level (a float, non-increasing over the calls), ``x`` the iterate after the
    update (what the next level starts from; at the last level, the output) and ``x0`` the level's clean
    estimate; both tensors have the output's shape, (B, 2, H, W) (MRF: complex (B, k, H, W)). Which iterate and
    which estimate: each sampler's ``sample`` docstring says (MRF-DiPh's ``x`` is its k-space-consistent
    estimate and ``x0`` the Bloch-consistent one it returns). Give it to the constructor or, for a solver built
    by the registry from a config, set it after building: ``solver.callback = fn`` (``None`` switches it off).
    The tensors are the sampler's own: clone what you keep, never modify them in place. The sampler draws
    nothing for the callback, so its output is bit for bit the same with or without one (as long as the
    callback itself draws nothing from the sampler's random source). With ``samples`` > 1 it is called for
    every draw (draws run as a batch: once per level, the draws along the batch axis). Solvers that are not
    diffusion samplers (classical ones, ``padis-diffpir``, which runs deepinv's own loop) have no callback.
    """

    name = "sampler"
    callback: Callable | None = None

    def __init__(self, denoiser, steps=50, sigma_max=10.0, sigma_min=0.003, rho=7.0, sigmas=None,
                 progress=False, device="cpu", samples=1, sample_batch=None, rng=None, callback=None):
        super().__init__(device=device)
        self.set_samples(samples, sample_batch)
        self.rng = rng
        self.callback = callback
        self.denoiser = denoiser
        self.sigmas = edm_sigmas(steps, sigma_max, sigma_min, rho) if sigmas is None else as_sigmas(sigmas)
        self.steps = len(self.sigmas)
        self.sigma_max, self.sigma_min, self.rho = float(self.sigmas[0]), float(self.sigmas[-1]), rho
        self.progress = progress
        self.nfe = 0

    def _start(self, y, physics, generator, x_init, denoiser=None):
        """Checks the inputs; returns ``(A^H y, x_init or None, counting denoiser)``. ``x_init`` may be a tensor
        or deepinv's shape tuple (then ``None``: the sampler's own start on that shape). ``denoiser``: the one
        to count and hand the generator to (default ``self.denoiser``)."""
        if not torch.isfinite(y).all():
            raise DataError(f"{self.name}: the measurements y hold non-finite values")
        with torch.no_grad():
            x_adj = physics.A_adjoint(y)
        if not torch.isfinite(x_adj).all():
            raise DataError(f"{self.name}: A^H y is non-finite (bad coil maps or mask)")
        if isinstance(x_init, (tuple, list, torch.Size)):
            if tuple(x_init) != tuple(x_adj.shape):
                raise ConfigError(f"{self.name}: x_init shape {tuple(x_init)} != image shape {tuple(x_adj.shape)}")
            x_init = None
        elif x_init is not None:
            x_init = torch.as_tensor(x_init).to(x_adj)
            if x_init.shape != x_adj.shape or not torch.isfinite(x_init).all():
                raise DataError(f"{self.name}: x_init must be a finite tensor of shape {tuple(x_adj.shape)}")
        check_batch(generator, x_adj.shape[0], self.name)
        self.nfe = 0
        denoise = denoise_fn(self.denoiser if denoiser is None else denoiser, generator)

        def counted(x, sigma):
            self.nfe += 1
            return denoise(x, sigma)

        return x_adj, x_init, counted

    def _report(self, step: int, sigma: float, x: torch.Tensor, x0: torch.Tensor, scale=None) -> None:
        """Calls ``self.callback(step, sigma, x, x0)`` if one is set (else nothing). ``scale``: a factor (e.g.
        (B, 1, 1, 1)) taking ``x`` and ``x0`` from the sampler's working units to the output's, applied only
        when there is a callback."""
        if self.callback is None:
            return
        if scale is not None:
            x, x0 = x * scale, x0 * scale
        self.callback(int(step), float(sigma), x, x0)

    def _check_finite(self, x, i, detail=""):
        if not torch.isfinite(x).all():
            raise SamplerDivergedError(f"{self.name}: the iterate became non-finite at noise level {i + 1}/"
                                       f"{self.steps} (sigma={float(self.sigmas[i]):.4g}){detail}")

    @staticmethod
    def noise(x, generator):
        return randn(x.shape, generator, x.device, x.dtype)
