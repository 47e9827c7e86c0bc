"""2-D non-uniform FFT (finufft) as an exact adjoint pair of torch autograd functions.

Convention. An image X (..., H, W) has pixel (h, w) at position (h - H//2, w - W//2) (the fftshift-centred grid),
and points k (M, 2) are in radians per pixel (k[:, 0] along H, k[:, 1] along W; finufft folds values outside
[-pi, pi)). The transforms are unnormalised:

    forward (type 2, isign = -1):  y[m]    = sum_{h,w} X[h, w] exp(-i (k[m,0] (h - H//2) + k[m,1] (w - W//2)))
    adjoint (type 1, isign = +1):  X[h, w] = sum_m y[m] exp(+i (k[m,0] (h - H//2) + k[m,1] (w - W//2)))

which is finufft's default mode ordering (``modeord=0``: index h <-> mode h - H//2). The adjoint is the exact
Hermitian transpose of the forward, so each is the other's backward (for a C-linear map torch's vector-Jacobian
product is the Hermitian transpose applied to the incoming gradient). Points are constants (no gradient).

Tensors go through numpy on the CPU and come back on the input's device; complex64 uses finufft's single precision,
complex128 its double precision. Leading dims are batched as finufft's ``n_trans``. finufft uses
``torch.get_num_threads()`` threads (one under ``OMP_NUM_THREADS=1``).
"""
from __future__ import annotations

import finufft
import numpy as np
import torch

from ..errors import DataError

DEFAULT_EPS = 1e-6


def _points(points, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) contiguous coordinate arrays of the real precision matching ``dtype`` from (M, 2) points."""
    p = points.detach().cpu().numpy() if torch.is_tensor(points) else np.asarray(points)
    if p.ndim != 2 or p.shape[1] != 2:
        raise DataError(f"nufft: points must have shape (M, 2), got {tuple(p.shape)}")
    real = np.float32 if dtype == np.complex64 else np.float64
    return np.ascontiguousarray(p[:, 0], dtype=real), np.ascontiguousarray(p[:, 1], dtype=real)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().resolve_conj().cpu().numpy())


def _complex(t: torch.Tensor, name: str) -> torch.Tensor:
    if not torch.is_tensor(t) or not t.is_complex():
        raise DataError(f"nufft: {name} must be a complex torch tensor, got "
                        f"{t.dtype if torch.is_tensor(t) else type(t).__name__}")
    return t if t.dtype in (torch.complex64, torch.complex128) else t.to(torch.complex64)


def _opts(eps: float, threads: int | None = None) -> dict:
    return dict(eps=float(eps), nthreads=max(1, torch.get_num_threads()) if threads is None else threads)


def _type2(images: torch.Tensor, points, eps: float) -> torch.Tensor:
    lead, (h, w) = images.shape[:-2], images.shape[-2:]
    f = _numpy(images).reshape(-1, h, w)
    x, y = _points(points, f.dtype)
    out = finufft.nufft2d2(x, y, f, isign=-1, **_opts(eps))
    return torch.from_numpy(out.reshape(*lead, x.shape[0])).to(images.device)


def _type1(values: torch.Tensor, points, shape: tuple[int, int], eps: float) -> torch.Tensor:
    lead, m = values.shape[:-1], values.shape[-1]
    c = _numpy(values).reshape(-1, m)
    x, y = _points(points, c.dtype)
    if x.shape[0] != m:
        raise DataError(f"nufft: values have {m} samples but points have {x.shape[0]}")
    # one thread: finufft's multithreaded spreading adds the samples into the grid in a varying order, so the
    # adjoint (and every sampler using it) would not give the same output for the same seed
    out = finufft.nufft2d1(x, y, c, n_modes=tuple(int(s) for s in shape), isign=1, **_opts(eps, threads=1))
    return torch.from_numpy(out.reshape(*lead, *shape)).to(values.device)


class _Forward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, images, points, eps):
        ctx.points, ctx.eps, ctx.shape = points, eps, tuple(images.shape[-2:])
        return _type2(images, points, eps)

    @staticmethod
    def backward(ctx, grad):
        return _type1(grad, ctx.points, ctx.shape, ctx.eps), None, None


class _Adjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values, points, shape, eps):
        ctx.points, ctx.eps = points, eps
        return _type1(values, points, shape, eps)

    @staticmethod
    def backward(ctx, grad):
        return _type2(grad, ctx.points, ctx.eps), None, None, None


def nufft_forward(images: torch.Tensor, points, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Type-2 NUFFT (image -> k-space samples), differentiable in ``images``.

    :param images: complex (..., H, W).
    :param points: (M, 2) radians (tensor or array; no gradient).
    :return: complex (..., M), same dtype and device as ``images``.
    """
    images = _complex(images, "images")
    if images.ndim < 2:
        raise DataError(f"nufft: images must be (..., H, W), got shape {tuple(images.shape)}")
    return _Forward.apply(images, points, eps)


def nufft_adjoint(values: torch.Tensor, points, shape: tuple[int, int], eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Type-1 NUFFT (k-space samples -> image), the exact adjoint of :func:`nufft_forward`.

    :param values: complex (..., M).
    :param points: (M, 2) radians.
    :param shape: (H, W) of the output image.
    :return: complex (..., H, W), same dtype and device as ``values``.
    """
    values = _complex(values, "values")
    if len(shape) != 2:
        raise DataError(f"nufft: shape must be (H, W), got {shape}")
    return _Adjoint.apply(values, points, tuple(int(s) for s in shape), eps)
