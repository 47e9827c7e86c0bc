r"""Data-consistency steps: small objects with one call signature ``step(x0, y, physics, x=None) -> x0c``.

``x0`` is the denoised estimate; ``x`` the sampler's iterate (only the DPS gradient step uses it, because it
differentiates through the denoiser). Images are (B, 2, H, W) real tensors holding (Re, Im), so the real
inner product of two images is the real part of their complex (Hermitian) inner product, and deepinv's CG on
them is the Hermitian CG. Every step is per slice: the slices of a batch are independent problems.

* :class:`DPSGradient` -- the normalised DPS step of PaDIS-MRI Algorithm 1: :math:`x - \zeta\,\nabla_x\|y - A
  D(x)\|^2 / \|y - A D(x)\|`.
* :class:`CGProx` -- the proximal step of DDS (Chung et al. 2024, eq. 13): ``iters`` CG iterations on
  :math:`(I + \gamma A^H A)\,u = x_0 + \gamma A^H y` from :math:`u = x_0`; the early stop is part of the method.
* :class:`Projection` -- the noiseless variant: CG on :math:`A^H A u = A^H y` from :math:`u = x_0`, i.e.
  :math:`x_0 + A^+(y - A x_0)` when run to convergence.
"""
from __future__ import annotations

import math

import torch
from deepinv.optim.utils import conjugate_gradient

from ..errors import ConfigError


def _number(what: str, value, low: float, strict: bool) -> float:
    """``value`` as a finite float ``> low`` (``strict``) or ``>= low``; :class:`ConfigError` otherwise."""
    bound = f"{'>' if strict else '>='} {low:g}"
    try:
        if isinstance(value, (bool, str)):
            raise TypeError
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a finite number {bound}, got {value!r}") from None
    if not math.isfinite(out) or out < low or (strict and out == low):
        raise ConfigError(f"{what} must be a finite number {bound}, got {value!r}")
    return out


def _count(what: str, value) -> int:
    """``value`` as an integer >= 0; :class:`ConfigError` otherwise."""
    try:
        if isinstance(value, (bool, str)) or int(value) != value:
            raise TypeError
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{what} must be an integer >= 0, got {value!r}") from None
    if value < 0:
        raise ConfigError(f"{what} must be an integer >= 0, got {value!r}")
    return int(value)


def _cg(operator, b, x0, iters):
    """Exactly ``iters`` CG iterations per slice (tol 0 never stops early); ``iters = 0`` returns ``x0``."""
    if iters == 0:
        return x0
    return conjugate_gradient(operator, b, max_iter=iters, tol=0.0, init=x0, parallel_dim=[0])


class DPSGradient:
    r"""Normalised DPS gradient step (PaDIS-MRI Algorithm 1, line 14): :math:`x - \zeta g / \sqrt{SSE}` with
    :math:`SSE = \|y - A x_0\|^2` and :math:`g = \nabla_x SSE` by autograd through the denoiser (``x0`` must be
    a function of ``x``). SSE = 0 (the data are matched exactly) skips the step for that slice."""

    needs_grad = True

    def __init__(self, zeta: float = 3.0):
        self.zeta = _number("zeta", zeta, 0.0, strict=False)

    def __call__(self, x0, y, physics, x=None):
        if x is None or not x.requires_grad:
            raise ConfigError("DPSGradient needs the iterate x (requires_grad) that x0 was denoised from")
        with torch.enable_grad():
            r = y - physics.A(x0)
            sse = r.pow(2).flatten(1).sum(1)
            (g,) = torch.autograd.grad(sse.sum(), x)  # slices are independent: grad of the sum = per-slice grads
        with torch.no_grad():
            coef = torch.where(sse > 0, self.zeta / sse.clamp_min(torch.finfo(sse.dtype).tiny).sqrt(),
                               torch.zeros_like(sse))
            return x - coef.view((-1,) + (1,) * (x.ndim - 1)) * g


class CGProx:
    r"""DDS proximal step :math:`\arg\min_u \tfrac12\|u - x_0\|^2 + \tfrac\gamma2\|Au - y\|^2` by exactly
    ``iters`` CG iterations from :math:`u = x_0` (``gamma`` may be a per-call override, e.g. DAPS's
    :math:`r_t^2/\tau^2`)."""

    needs_grad = False

    def __init__(self, gamma: float = 1.0, iters: int = 5):
        self.gamma = _number("CGProx: gamma", gamma, 0.0, strict=True)
        self.iters = _count("CGProx: iters", iters)

    def __call__(self, x0, y, physics, x=None, gamma=None):
        """``gamma``: this call's weight, a float or one per slice ((B,) tensor); default the step's own."""
        gamma = self.gamma if gamma is None else gamma
        if isinstance(gamma, torch.Tensor):
            gamma = gamma.to(x0).view((-1,) + (1,) * (x0.ndim - 1))
        with torch.no_grad():
            b = x0 + gamma * physics.A_adjoint(y)
            return _cg(lambda u: u + gamma * physics.A_adjoint_A(u), b, x0, self.iters)


class Projection:
    r"""Noiseless data consistency: ``iters`` CG iterations on :math:`A^H A u = A^H y` from :math:`u = x_0`
    (the least-squares solution closest to :math:`x_0` in the limit)."""

    needs_grad = False

    def __init__(self, iters: int = 20):
        self.iters = _count("Projection: iters", iters)

    def __call__(self, x0, y, physics, x=None):
        with torch.no_grad():
            return _cg(physics.A_adjoint_A, physics.A_adjoint(y), x0, self.iters)


def make_data_consistency(kind: str, gamma: float = 1.0, iters: int = 5, zeta: float = 3.0):
    """Build a step by name: ``"prox"`` (:class:`CGProx`), ``"projection"`` or ``"dps"`` (:class:`DPSGradient`)."""
    if kind == "prox":
        return CGProx(gamma, iters)
    if kind == "projection":
        return Projection(iters)
    if kind == "dps":
        return DPSGradient(zeta)
    raise ConfigError(f"data consistency must be 'prox', 'projection' or 'dps', got {kind!r}")
