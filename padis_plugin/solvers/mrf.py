r"""MR-fingerprinting solvers: quantitative maps from undersampled spiral MRF data, on the rank-k TSMI subspace.

Every solver takes the problem of an MRF item (:meth:`padis_plugin.mrf.files.MRFFile.problem`): ``y`` the
density-weighted k-space (B, C, frames, samples) and ``physics`` an :class:`~padis_plugin.mrf.physics.MRFPhysics`
carrying its ``dictionary``. It returns the Bloch-consistent TSMI ``z`` (B, k, H, W) complex: every voxel a
dictionary atom times a complex PD, so :func:`~padis_plugin.mrf.matching.match_image` of ``z`` reads the T1 / T2 /
PD maps back exactly (the atom is its own best match).

- ``mrf-svd-dm``: dictionary matching of :math:`A^H y` (SVD-MRF, McGivney et al., IEEE TMI 2014);
- ``mrf-cg-dm``: least squares :math:`\min_x \|y - A x\|^2` by CG, then matching;
- ``mrf-admm-dm``: the splitting below with no prior (iterative projection onto the Bloch responses);
- ``mrf-diph``: MRF-DiPh (Mayo et al., MICCAI 2025): the splitting inside a reverse diffusion, the prior's
  denoiser pulling :math:`\hat x` towards its estimate with weight :math:`\mu_i = \lambda / \sigma_i^2`.

Data scale: the priors are trained on TSMIs divided by the 99th percentile of their voxel norms inside the head;
the solvers divide y by the same statistic of a CG least-squares estimate (:func:`data_scale`) and multiply the
result back, so PD keeps the data's units.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from deepinv.models import Reconstructor

from ..errors import ConfigError, DataError
from ..prior.channels import complex_to_real_channels, real_channels_to_complex
from ..progress import progress_bar
from ..rng import randn
from .base import DiffusionSampler, ScheduleParams, SamplerDivergedError
from .params import takes_params
from .prior_loading import load_denoiser
from .settings import family_settings, tuned

LAM_FALLBACK = 1e-4  # a TSMI prior whose family has no tuned weight: the published value (both shipped priors' too)

SCALE_QUANTILE = 0.99   # the TSMI's scale: this quantile of its voxel norms (the training data's normalisation)
SCALE_CG_ITERS = 10     # CG iterations of the least-squares estimate the scale is read from


def _dictionary(physics, who: str):
    d = getattr(physics, "dictionary", None)
    if d is None:
        raise ConfigError(f"{who}: needs an MR-fingerprinting problem (an MRFPhysics carrying its dictionary, "
                          "as padis_plugin.mrf.files.MRFFile.problem builds it); got "
                          f"{type(physics).__name__}")
    return d


def project(x: torch.Tensor, dictionary) -> torch.Tensor:
    """Bloch projection (step 4 of MRF-DiPh): per voxel the atom d maximising |<d, w>|, z = <d, w> d.
    ``x`` (B, k, H, W) complex -> z of the same shape."""
    from ..mrf.matching import match  # mrf/ sits beside acquisition/, below solvers/

    w = x.movedim(1, -1)
    return match(dictionary, w).z.movedim(-1, 1).to(x.dtype)


def least_squares(y, physics, iters: int, rho: float = 0.0) -> torch.Tensor:
    """:math:`(A^H A + \\rho I)^{-1} A^H y` by ``iters`` CG iterations from zero."""
    rhs = physics.A_adjoint(y)
    return physics.normal_solve(rhs, max(rho, 0.0), x0=torch.zeros_like(rhs), iters=iters)


def data_scale(y, physics) -> torch.Tensor:
    """(B,) the TSMI scale of each item: :data:`SCALE_QUANTILE` of the voxel norms of a CG least-squares fit."""
    x = least_squares(y, physics, SCALE_CG_ITERS)
    norms = torch.linalg.vector_norm(x, dim=1).flatten(1)
    s = torch.quantile(norms.float(), SCALE_QUANTILE, dim=1).to(norms.dtype)
    if not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
        raise DataError("MRF: the data carry no signal (the least-squares image is zero or non-finite)")
    return s


def _check(y, who):
    if not torch.is_complex(y) or y.ndim != 4:
        raise DataError(f"{who}: y must be complex (B, C, frames, samples), got {y.dtype} {tuple(y.shape)}")
    if not bool(torch.isfinite(torch.view_as_real(y)).all()):
        raise DataError(f"{who}: the measurements y hold non-finite values")


class MRFSVDDM(Reconstructor):
    """SVD-MRF: dictionary matching of the adjoint image :math:`A^H y` (McGivney et al., IEEE TMI 2014)."""

    name = "mrf-svd-dm"
    nfe = 0

    def forward(self, y, physics, **kwargs):
        _check(y, self.name)
        return project(physics.A_adjoint(y), _dictionary(physics, self.name))


class MRFCGDM(Reconstructor):
    """Least squares by ``iterations`` of CG on :math:`A^H A x = A^H y`, then dictionary matching."""

    name = "mrf-cg-dm"
    nfe = 0

    def __init__(self, iterations: int = 20, device="cpu"):
        super().__init__(device=device)
        self.iterations = int(iterations)

    def forward(self, y, physics, **kwargs):
        _check(y, self.name)
        return project(least_squares(y, physics, self.iterations), _dictionary(physics, self.name))


class MRFDiPh(DiffusionSampler):
    r"""MRF-DiPh (Mayo et al., MICCAI 2025): ADMM splitting of k-space consistency and the Bloch projection inside
    a reverse diffusion. Per level :math:`\sigma_i` (one network call):

    1. :math:`\tilde x = D(x_i, \sigma_i)`;
    2. :math:`x_c = (\mu_i \tilde x + \gamma_i z - v) / (\mu_i + \gamma_i)`, :math:`\mu_i = \lambda/\sigma_i^2`,
       :math:`\gamma_i = \gamma \mu_i`;
    3. :math:`\hat x = \arg\min \|y - A x\|^2 + \rho_i \|x - x_c\|^2`, :math:`\rho_i = \mu_i + \gamma_i`, by
       ``cg_iters`` CG iterations warm-started from the previous :math:`\hat x`;
    4. :math:`z = P_{Bloch}(\hat x + v / \gamma_i)` (dictionary matching);
    5. :math:`v \leftarrow v + \gamma_i (\hat x - z)`;
    6. :math:`x_{i+1} = z + \sigma_{i+1}(\sqrt{\xi} n + \sqrt{1 - \xi}\,(x_i - z)/\sigma_i)`; the last z is returned.

    With ``lam = 0`` (or no denoiser) no network is called and :math:`\gamma_i` is the constant ``gamma_fixed``:
    ADMM between k-space consistency and the Bloch projection alone (``mrf-admm-dm``). ``lam`` left out: the
    weight tuned for the denoiser's prior family (its ``kind``; :data:`~padis_plugin.solvers.settings.TUNED`),
    as ``mrf-diph`` gives it.
    """

    name = "mrf-diph"

    def __init__(self, denoiser=None, lam: float | None = None, gamma: float = 0.01, xi: float = 1.0,
                 cg_iters: int = 5, gamma_fixed: float = 1e-3, **kwargs):
        super().__init__(denoiser, **kwargs)
        if lam is None:  # the tuned weight of the prior's family (its ``kind``), as the registered mrf-diph
            lam = 0.0 if denoiser is None else family_settings(denoiser, "mrf-diph").get("lam", LAM_FALLBACK)
        for key, v, lo in (("lam", lam, 0.0), ("gamma", gamma, 0.0), ("gamma_fixed", gamma_fixed, 0.0)):
            if not math.isfinite(v) or v < lo:
                raise ConfigError(f"{self.name}: {key} must be a finite number >= {lo}, got {v}")
        if not 0.0 <= xi <= 1.0:
            raise ConfigError(f"{self.name}: xi must be in [0, 1], got {xi}")
        if cg_iters < 1:
            raise ConfigError(f"{self.name}: cg_iters must be >= 1, got {cg_iters}")
        self.lam, self.gamma, self.xi, self.cg_iters, self.gamma_fixed = lam, gamma, xi, int(cg_iters), gamma_fixed
        self.uses_prior = denoiser is not None and lam > 0

    def _weights(self, sigma: float) -> tuple[float, float]:
        if not self.uses_prior:
            return 0.0, self.gamma_fixed
        mu = self.lam / sigma ** 2
        return mu, self.gamma * mu

    def sample(self, y, physics, generator=None, x_init=None):
        r"""Returns the last Bloch-consistent z (B, k, H, W) complex, in the data's units. The callback (see
        :class:`~.base.DiffusionSampler`) gets, per level and in the data's units, the k-space-consistent
        estimate :math:`\hat x` of step 3 as ``x`` and the Bloch-consistent :math:`z` of step 4 as ``x0`` (both
        complex (B, k, H, W)); without a prior (``mrf-admm-dm``) ``sigma`` is the unused schedule's level."""
        _check(y, self.name)
        dictionary = _dictionary(physics, self.name)
        scale = data_scale(y, physics).reshape(-1, 1, 1, 1)
        rhs_y, _, denoise = self._start(y / scale, physics, generator, None)  # A^H y, checks, counted denoiser
        x_hat = torch.zeros_like(rhs_y)
        z, v = torch.zeros_like(rhs_y), torch.zeros_like(rhs_y)
        x = None
        if self.uses_prior:
            x = float(self.sigmas[0]) * randn(complex_to_real_channels(rhs_y).shape, generator, rhs_y.device,
                                              rhs_y.real.dtype)
        sigmas = [float(s) for s in self.sigmas] + [0.0]
        for i in progress_bar(range(self.steps), desc=self.name, unit="step", enabled=self.progress, nested=True):
            sigma = sigmas[i]
            mu, g = self._weights(sigma)
            if self.uses_prior:
                with torch.no_grad():
                    x_tilde = real_channels_to_complex(denoise(x, sigma))
                x_c = (mu * x_tilde + g * z - v) / (mu + g)
            else:
                x_c = z - v / g if g > 0 else z
            x_hat = physics.normal_solve(rhs_y + (mu + g) * x_c, mu + g, x0=x_hat, iters=self.cg_iters)
            z = project(x_hat + v / g, dictionary) if g > 0 else project(x_hat, dictionary)
            v = v + g * (x_hat - z)
            if not bool(torch.isfinite(torch.view_as_real(z)).all()):
                raise SamplerDivergedError(f"{self.name}: the iterate became non-finite at step {i + 1}/{self.steps}")
            self._report(i, sigma, x_hat, z, scale=scale)
            if self.uses_prior and i + 1 < self.steps:
                z_r = complex_to_real_channels(z)
                eps = (x - z_r) / sigma
                fresh = self.noise(z_r, generator)
                x = z_r + sigmas[i + 1] * (math.sqrt(self.xi) * fresh + math.sqrt(1.0 - self.xi) * eps)
        return z * scale


# ------------------------------------------------------------------------------------------ factories
@dataclass
class MRFSVDParams:
    """No parameters."""
    TASK: ClassVar[str] = "mrf"   # solves the benchmark task "mrf" (quantitative maps)


@dataclass
class MRFCGParams:
    TASK: ClassVar[str] = "mrf"   # solves the benchmark task "mrf" (quantitative maps)
    iterations: int = 20

    def check(self, bad):
        if self.iterations < 1:
            bad.add("iterations", f"must be >= 1, got {self.iterations}")


@dataclass
class MRFADMMParams:
    TASK: ClassVar[str] = "mrf"   # solves the benchmark task "mrf" (quantitative maps)
    steps: int = 30
    # the ADMM penalty of every step (no prior: no sigma to scale it by); experiments/mrf_val_baselines, six
    # validation slices, T1 / T2 MAPE: 1e-3 31.5 / 160.8 %, 3e-3 31.9 / 166.5, 1e-2 34.8 / 183.1
    gamma_fixed: float = 1e-3
    cg_iters: int = 5
    progress: bool = False

    def check(self, bad):
        for key in ("steps", "cg_iters"):
            if getattr(self, key) < 1:
                bad.add(key, f"must be >= 1, got {getattr(self, key)}")
        if not math.isfinite(self.gamma_fixed) or self.gamma_fixed <= 0:
            bad.add("gamma_fixed", f"must be a finite number > 0, got {self.gamma_fixed}")


@dataclass
class MRFDiPhParams(ScheduleParams):
    TASK: ClassVar[str] = "mrf"   # solves the benchmark task "mrf" (quantitative maps)
    checkpoint: str = "mrf-edm-s"     # a TSMI prior (10 channels): shipped name or checkpoint path
    steps: int = 30
    sigma_max: float = 5.0
    sigma_min: float = 0.01
    lam: float = LAM_FALLBACK      # left out: the checkpoint family's tuned weight (settings.TUNED)
    gamma: float = 0.01
    xi: float = 1.0
    cg_iters: int = 5


@takes_params(MRFSVDParams, "mrf-svd-dm")
def make_mrf_svd_dm(p: MRFSVDParams, device="cpu") -> MRFSVDDM:
    return MRFSVDDM(device=device)


@takes_params(MRFCGParams, "mrf-cg-dm")
def make_mrf_cg_dm(p: MRFCGParams, device="cpu") -> MRFCGDM:
    return MRFCGDM(p.iterations, device=device)


@takes_params(MRFADMMParams, "mrf-admm-dm")
def make_mrf_admm_dm(p: MRFADMMParams, device="cpu") -> MRFDiPh:
    solver = MRFDiPh(None, lam=0.0, gamma_fixed=p.gamma_fixed, cg_iters=p.cg_iters, steps=p.steps,
                     progress=p.progress, device=device)
    solver.name = "mrf-admm-dm"
    return solver


@takes_params(MRFDiPhParams, "mrf-diph", settings=tuned("mrf-diph"))
def make_mrf_diph(p: MRFDiPhParams, device="cpu") -> MRFDiPh:
    from ..prior.families import checkpoint_family

    family = checkpoint_family(p.checkpoint)
    denoiser = load_denoiser(family.name, p.checkpoint, device)
    return MRFDiPh(denoiser, lam=p.lam, gamma=p.gamma, xi=p.xi, cg_iters=p.cg_iters, steps=p.steps,
                   sigma_max=p.sigma_max, sigma_min=p.sigma_min, rho=p.rho, progress=p.progress, device=device,
                   samples=p.samples, sample_batch=p.sample_batch)
