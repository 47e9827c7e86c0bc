"""Classical baselines: zero-filled adjoint, CG-SENSE and l1-wavelet (analogue of the paper's PICS-L1, BART pics -l1).

Each is a :class:`deepinv.models.Reconstructor`, called as ``solver(y, physics, generator=None)`` and
returning (B, 2, H, W); ``nfe`` is always 0 (no network evaluations).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from deepinv.models import Reconstructor
from deepinv.optim import FISTA
from deepinv.optim.data_fidelity import L2
from deepinv.optim.prior import WaveletPrior

from .params import takes_params

# Swept over {3e-4, 1e-3, 3e-3, 1e-2} on noise-free simulated 8-coil 128x128 T1/T2 brain slices at the
# prepared normalisation (low-resolution 99th percentile ~ 1), R = 4 and 8, ACS 12, 100 iterations:
# 1e-3 was best or within 0.1 dB of best everywhere (+4.0/+4.7 dB over zero-filled at R = 4).
# Noisy real data may want a larger value: pass ``lambda``.
DEFAULT_LAMBDA = 1e-3


class ZeroFilled(Reconstructor):
    """Zero-filled reconstruction x = A^H y (coil-combined with the maps)."""

    nfe = 0

    def forward(self, y, physics, generator=None, **kwargs):
        return physics.A_adjoint(y)


class SENSE(Reconstructor):
    """CG-SENSE: least squares min_x ||A x - y||^2 by conjugate gradient on A^H A x = A^H y
    (Pruessmann et al. 1999), through ``physics.A_dagger``."""

    nfe = 0

    def __init__(self, iterations: int = 30, tol: float = 1e-6, device="cpu"):
        super().__init__(device=device)
        self.iterations, self.tol = int(iterations), float(tol)

    def forward(self, y, physics, generator=None, **kwargs):
        return physics.A_dagger(y, solver="CG", max_iter=self.iterations, tol=self.tol)


class WaveletL1(Reconstructor):
    r"""l1-wavelet regularised SENSE by FISTA (Beck and Teboulle 2009):
    min_x 1/2 ||A x - y||^2 + lambda ||W x||_1, W an orthogonal ``wavelet`` transform of ``level`` levels
    (real and imaginary parts thresholded separately, approximation band unregularised), step 1/L with L an
    upper bound of ||A^H A|| (:func:`normal_operator_bound`), initialised at A^H y."""

    nfe = 0

    def __init__(self, lam: float = DEFAULT_LAMBDA, iterations: int = 100, wavelet: str = "db4", level: int = 3,
                 device="cpu"):
        super().__init__(device=device)
        self.lam, self.iterations = float(lam), int(iterations)
        self.prior = WaveletPrior(level=int(level), wv=wavelet, device=device)

    def forward(self, y, physics, generator=None, **kwargs):
        norm = normal_operator_bound(physics, physics.A_adjoint(y))
        algo = FISTA(data_fidelity=L2(), prior=self.prior, lambda_reg=self.lam, stepsize=1.0 / norm,
                     max_iter=self.iterations)  # default init: A^H y
        with torch.no_grad():
            return algo(y, physics)


def normal_operator_bound(physics, x0) -> float:
    """An upper bound L >= ||A^H A||, so that FISTA's step 1/L converges.

    For multi-coil Cartesian MRI, A^H A = S^H F^H M F S with an orthonormal F, so ||A^H A|| <= max|M| x
    max over pixels of sum_c |S_c|^2: exact, deterministic and cheap (1 for binary masks and unit-RSS maps).
    Other physics fall back to deepinv's power method, from a fixed seed (deepinv starts it from an unseeded
    randn_like) with its convergence warning silenced, enlarged by 1% for what 100 iterations leave.
    """
    mask, maps = getattr(physics, "mask", None), getattr(physics, "coil_maps", None)
    if isinstance(mask, torch.Tensor) and isinstance(maps, torch.Tensor) and maps.is_complex():
        return float(mask.abs().max()) * float((maps.abs() ** 2).sum(dim=-3).max())
    devices = [x0.device] if x0.device.type == "cuda" else []
    with torch.no_grad(), torch.random.fork_rng(devices=devices), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        return 1.01 * float(physics.compute_sqnorm(x0, max_iter=100, tol=1e-5, verbose=False))


def _at_least(bad, bounds: dict) -> None:
    """A problem for each ``key: (value, low)`` with ``value < low``."""
    for key, (value, low) in bounds.items():
        if value < low:
            bad.add(key, f"must be >= {low}, got {value}")


@dataclass
class ZeroFilledParams:
    """No parameters."""


@dataclass
class SENSEParams:
    iterations: int = 30
    tol: float = 1e-6

    def check(self, bad):
        _at_least(bad, {"iterations": (self.iterations, 1), "tol": (self.tol, 0.0)})


@dataclass
class WaveletL1Params:
    lambda_: float = field(default=DEFAULT_LAMBDA, metadata={"key": "lambda"})
    iterations: int = 100
    wavelet: str = "db4"                  # a discrete pywt wavelet
    level: int = 3

    def check(self, bad):
        import pywt

        _at_least(bad, {"lambda": (self.lambda_, 0.0), "iterations": (self.iterations, 1), "level": (self.level, 1)})
        if self.wavelet not in pywt.wavelist(kind="discrete"):
            bad.add("wavelet", f": unknown wavelet {self.wavelet!r} (a discrete pywt wavelet, e.g. db4)")


@takes_params(ZeroFilledParams, "zero-filled")
def make_zero_filled(p: ZeroFilledParams, device="cpu") -> ZeroFilled:
    """Factory for ``zero-filled`` (no parameters)."""
    return ZeroFilled(device=device)


@takes_params(SENSEParams, "sense")
def make_sense(p: SENSEParams, device="cpu") -> SENSE:
    """Factory for ``sense`` (:class:`SENSEParams`)."""
    return SENSE(p.iterations, p.tol, device=device)


@takes_params(WaveletL1Params, "wavelet-l1")
def make_wavelet_l1(p: WaveletL1Params, device="cpu") -> WaveletL1:
    """Factory for ``wavelet-l1`` (:class:`WaveletL1Params`)."""
    return WaveletL1(lam=p.lambda_, iterations=p.iterations, wavelet=p.wavelet, level=p.level, device=device)
