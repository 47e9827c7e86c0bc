"""The subspace MRF acquisition as a deepinv ``LinearPhysics`` (MRF-DiPh, spec sections 1 and 3).

Unknown: the subspace images (TSMI) X, complex (B, k, H, W); the time-series image at frame t is
sum_j V[j, t] X_j with the temporal basis V, complex (k, frames). Measurement: complex (B, C, frames, M), C coils
(C = 1 without coil maps), M samples per frame. The operator is

    y[b, c, t, m] = sqrt(w[t, m]) / sqrt(H W) * NUFFT_t( S_c * sum_j V[j, t] X[b, j] )[m],

an orthonormally scaled NUFFT (as torchkbnufft's ``norm="ortho"`` of the published code) of frame t's spiral
interleaf, followed by the square root of the density compensation w. Folding W^{1/2} into the operator makes
A^H A = F^H W F, the weighted normal operator of the published method, and ``A_adjoint`` is exactly the adjoint of
``A``: deepinv's ``prox_l2`` / ``A_dagger`` (CG on A^H A) and :meth:`MRFPhysics.normal_solve` therefore solve the
published weighted least squares ||y_raw - F x||_W^2 once the raw k-space is weighted, y = sqrt(w) * y_raw
(:meth:`MRFPhysics.weight`). :meth:`MRFPhysics.measure` adds white noise to the raw k-space before the weighting
(deepinv noise models would add it after, i.e. coloured by 1 / sqrt(w): not the physical model), so the default
``noise_model`` is none.

Complex tensors are the only image layout (deepinv's LinearPhysics, CG and adjointness test work on complex tensors
with Hermitian inner products); converting to 2k real channels for a network is the prior's business.

Linearity trick (cost): the k subspace images (x C coils) are transformed at ALL frames' points in one finufft call
(n_trans = B C k) and combined per frame with V afterwards; the adjoint is one type-1 call with strengths
conj(V[j, t]) sqrt(w[t, m]) y[t, m].
"""
from __future__ import annotations

import math

import numpy as np
import torch
from deepinv.optim.linear.conjugate_gradient import conjugate_gradient
from deepinv.physics import LinearPhysics

from ..errors import DataError
from .nufft import DEFAULT_EPS, nufft_adjoint, nufft_forward
from .spiral import MRFTrajectory


def _complex_tensor(a, name: str) -> torch.Tensor:
    t = torch.as_tensor(a)
    if not t.is_complex():
        raise DataError(f"MRFPhysics: {name} must be complex, got dtype {t.dtype}")
    return t.to(torch.complex64)


class MRFPhysics(LinearPhysics):
    """Subspace MRF operator y = W^{1/2} F S (V-combination) X (module docstring).

    :param basis: V, complex (k, frames): frame t's image is sum_j V[j, t] X_j.
    :param points: (frames, M, 2) k-space points in radians (finufft convention, :mod:`.nufft`).
    :param dcf: density compensation w, (M,) shared by all frames or (frames, M); ``None``: ones (no weighting).
    :param img_size: (H, W); taken from ``coil_maps`` if given.
    :param coil_maps: optional complex (C, H, W) sensitivities S_c (``None``: one coil, S = 1).
    :param eps: finufft tolerance.
    :param kwargs: passed to :class:`deepinv.physics.LinearPhysics` (``max_iter``, ``tol``, ``solver`` of
        ``A_dagger`` / ``prox_l2``; defaults CG, 50 iterations, tol 1e-5).
    """

    def __init__(self, basis, points, dcf=None, img_size=None, coil_maps=None, eps: float = DEFAULT_EPS,
                 **kwargs):
        basis = _complex_tensor(basis, "basis V")
        if basis.ndim != 2:
            raise DataError(f"MRFPhysics: basis V must be (k, frames), got shape {tuple(basis.shape)}")
        k, frames = basis.shape
        pts = points.detach().cpu().numpy() if torch.is_tensor(points) else np.asarray(points)
        if pts.ndim != 3 or pts.shape[0] != frames or pts.shape[2] != 2:
            raise DataError(f"MRFPhysics: points must be (frames={frames}, M, 2) to match V, got {pts.shape}")
        if not np.all(np.isfinite(pts)):
            raise DataError("MRFPhysics: points contain NaN or infinite values")
        m = pts.shape[1]
        w = torch.ones(m) if dcf is None else torch.as_tensor(np.asarray(dcf, dtype=np.float32))
        if w.ndim == 1:
            w = w[None]
        if w.ndim != 2 or w.shape[1] != m or w.shape[0] not in (1, frames):
            raise DataError(f"MRFPhysics: dcf must be (M={m},) or (frames={frames}, M), got {tuple(w.shape)}")
        if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
            raise DataError("MRFPhysics: dcf must be finite and non-negative")
        if coil_maps is not None:
            coil_maps = _complex_tensor(coil_maps, "coil_maps")
            if coil_maps.ndim != 3:
                raise DataError(f"MRFPhysics: coil_maps must be (C, H, W), got {tuple(coil_maps.shape)}")
            if img_size is not None and tuple(img_size) != tuple(coil_maps.shape[1:]):
                raise DataError(f"MRFPhysics: img_size {tuple(img_size)} != coil map size "
                                f"{tuple(coil_maps.shape[1:])}")
            img_size = tuple(coil_maps.shape[1:])
        if img_size is None or len(img_size) != 2:
            raise DataError(f"MRFPhysics: img_size must be (H, W), got {img_size}")
        kwargs.setdefault("solver", "CG")
        kwargs.setdefault("tol", 1e-5)
        super().__init__(img_size=(k, *map(int, img_size)), **kwargs)
        self.shape = tuple(int(s) for s in img_size)
        self.k, self.frames, self.samples, self.eps = int(k), int(frames), int(m), float(eps)
        self.points = np.ascontiguousarray(pts.reshape(-1, 2), dtype=np.float64)  # all frames, frame-major
        self.register_buffer("basis", basis)
        self.register_buffer("sqrt_dcf", w.sqrt())
        self.register_buffer("coil_maps", coil_maps)
        self.scale = 1.0 / math.sqrt(self.shape[0] * self.shape[1])

    @classmethod
    def from_trajectory(cls, basis, trajectory: MRFTrajectory, coil_maps=None, **kwargs) -> "MRFPhysics":
        """Operator on a matrix x matrix grid for a :class:`~.spiral.MRFTrajectory` (its points and dcf)."""
        return cls(basis, trajectory.points, trajectory.dcf, img_size=(trajectory.matrix,) * 2,
                   coil_maps=coil_maps, **kwargs)

    @property
    def coils(self) -> int:
        return 1 if self.coil_maps is None else int(self.coil_maps.shape[0])

    def _check_x(self, x: torch.Tensor) -> None:
        if not torch.is_tensor(x) or not x.is_complex() or x.ndim != 4 or tuple(x.shape[1:]) != (self.k, *self.shape):
            raise DataError(f"MRFPhysics: x must be complex (B, {self.k}, {self.shape[0]}, {self.shape[1]}), got "
                            f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__} "
                            f"{x.dtype if torch.is_tensor(x) else ''}")

    def _check_y(self, y: torch.Tensor) -> None:
        want = (self.coils, self.frames, self.samples)
        if not torch.is_tensor(y) or not y.is_complex() or y.ndim != 4 or tuple(y.shape[1:]) != want:
            raise DataError(f"MRFPhysics: y must be complex (B, {want[0]}, {want[1]}, {want[2]}), got "
                            f"{tuple(y.shape) if torch.is_tensor(y) else type(y).__name__}")

    def _weight(self, dtype) -> torch.Tensor:
        real = torch.float64 if dtype == torch.complex128 else torch.float32
        return self.sqrt_dcf.to(real)

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """complex (B, k, H, W) -> complex (B, C, frames, M)."""
        self._check_x(x)
        b = x.shape[0]
        imgs = x[:, None] if self.coil_maps is None else self.coil_maps.to(x.dtype)[None, :, None] * x[:, None]
        ksp = nufft_forward(imgs, self.points, self.eps)  # (B, C, k, frames * M), one finufft call
        ksp = ksp.reshape(b, self.coils, self.k, self.frames, self.samples)
        y = torch.einsum("bcjtm,jt->bctm", ksp, self.basis.to(x.dtype))
        return y * (self._weight(x.dtype) * self.scale)

    def A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        """complex (B, C, frames, M) -> complex (B, k, H, W), the exact adjoint of :meth:`A`."""
        self._check_y(y)
        b = y.shape[0]
        yw = y * (self._weight(y.dtype) * self.scale)
        strengths = torch.einsum("bctm,jt->bcjtm", yw, self.basis.to(y.dtype).conj())
        imgs = nufft_adjoint(strengths.reshape(b, self.coils, self.k, -1), self.points, self.shape, self.eps)
        if self.coil_maps is None:
            return imgs[:, 0]
        return (self.coil_maps.to(y.dtype).conj()[None, :, None] * imgs).sum(dim=1)

    def weight(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw (unweighted) k-space (B, C, frames, M) -> this operator's measurement sqrt(w) * raw."""
        self._check_y(raw)
        return raw * self._weight(raw.dtype)

    def measure(self, x: torch.Tensor, noise_sigma: float = 0.0, generator: torch.Generator | None = None):
        """Simulated measurement y = sqrt(w) * (F S V x / sqrt(HW) + n): white complex Gaussian noise n on the raw
        k-space, standard deviation ``noise_sigma`` in each of the real and imaginary parts, drawn from
        ``generator`` (on x's device)."""
        y = self.A(x)
        if noise_sigma:
            real = torch.float64 if y.dtype == torch.complex128 else torch.float32
            n = torch.randn((2, *y.shape), generator=generator, device=y.device, dtype=real)
            y = y + noise_sigma * torch.complex(n[0], n[1]) * self._weight(y.dtype)
        return y

    def normal_solve(self, rhs: torch.Tensor, rho, x0: torch.Tensor | None = None, iters: int = 5,
                     tol: float = 1e-5) -> torch.Tensor:
        """Solve (A^H A + rho I) x = rhs by conjugate gradients warm-started from ``x0`` (zeros if None): the
        published k-space proximal step (spec section 3, step 3: rhs = A^H y + rho x_c, at most 5 iterations,
        relative tolerance 1e-5).

        Uses :func:`deepinv.optim.linear.conjugate_gradient` (Hermitian inner products a.conj() * b, per-batch
        step sizes, stop when every ||r_b|| <= tol ||rhs_b||), with its absolute ``eps`` set to the dtype's
        smallest normal number so that it does not bias small-scale problems.

        :param rhs: complex (B, k, H, W).
        :param rho: float > 0 or tensor (B,) of per-sample weights.
        :return: complex (B, k, H, W).
        """
        self._check_x(rhs)
        rho = torch.as_tensor(rho, device=rhs.device, dtype=rhs.real.dtype)
        if bool((rho < 0).any()):
            raise DataError(f"MRFPhysics.normal_solve: rho must be >= 0, got {rho}")
        rho = rho.reshape(-1, 1, 1, 1) if rho.ndim else rho
        if x0 is not None:
            self._check_x(x0)
        return conjugate_gradient(lambda v: self.A_adjoint(self.A(v)) + rho * v, rhs, max_iter=int(iters),
                                  tol=float(tol), eps=torch.finfo(rhs.real.dtype).tiny, parallel_dim=0,
                                  init=None if x0 is None else x0.to(rhs.dtype))
