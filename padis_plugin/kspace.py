"""Centred k-space helpers on numpy arrays: 2-D FFTs (also on torch tensors), centre crop, calibration width,
root-sum-of-squares.

One convention throughout, that of deepinv's ``MultiCoilMRI`` (and fastMRI's ``fft2c``, sigpy's centred
``fft``): orthonormal FFTs over the last two axes, ``ifftshift`` before and ``fftshift`` after, so DC sits at
index ``N // 2``. A block of ``n`` samples centred on DC starts at ``N // 2 - n // 2``.
"""
from __future__ import annotations

import numpy as np
import torch

from .errors import DataError

_AXES = (-2, -1)


def ifft2c(kspace: np.ndarray) -> np.ndarray:
    """Centred orthonormal inverse 2-D FFT over the last two axes (k-space -> image)."""
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=_AXES), axes=_AXES, norm="ortho"), axes=_AXES)


def fft2c(image: np.ndarray) -> np.ndarray:
    """Centred orthonormal forward 2-D FFT over the last two axes (image -> k-space)."""
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(image, axes=_AXES), axes=_AXES, norm="ortho"), axes=_AXES)


def center_crop(x: np.ndarray, shape) -> np.ndarray:
    """Centre crop of the last two axes to ``shape = (h, w)``, from ``(H - h) // 2`` as fastMRI's
    ``center_crop`` (``None``: no crop); :class:`DataError` if it does not fit."""
    if shape is None:
        return x
    h, w = (int(s) for s in shape)
    H, W = x.shape[-2:]
    if not (0 < h <= H and 0 < w <= W):
        raise DataError(f"crop {(h, w)} does not fit an image of {(H, W)}")
    top, left = (H - h) // 2, (W - w) // 2
    return x[..., top:top + h, left:left + w]


def rss(coil_images: np.ndarray, axis: int = -3) -> np.ndarray:
    """Root-sum-of-squares over the coil axis (default: the ``C`` of ``[..., C, H, W]``)."""
    return np.sqrt(np.sum(np.abs(coil_images) ** 2, axis=axis))


def rss_of_kspace(kspace: np.ndarray, recon_size=None) -> np.ndarray:
    """float32 RSS of the coil images of ``[..., C, H, W]`` k-space, centre-cropped to ``recon_size`` where it
    is smaller than the image (a larger size leaves that axis whole)."""
    image = rss(ifft2c(kspace)).astype(np.float32)
    if recon_size is None:
        return image
    return center_crop(image, [min(int(s), n) for s, n in zip(recon_size, image.shape[-2:])])


def calibration_width(mask: np.ndarray) -> int:
    """Side of the largest square centred on DC (rows and columns from ``N // 2 - n // 2``) that a 2-D
    sampling mask samples fully; 0 if DC itself is not sampled."""
    sampled = np.asarray(mask) > 0
    h, w = sampled.shape[-2:]
    width = 0
    for n in range(1, min(h, w) + 1):  # centred squares are nested: the first gap ends the search
        top, left = h // 2 - n // 2, w // 2 - n // 2
        if not sampled[..., top:top + n, left:left + n].all():
            break
        width = n
    return width


def fft2c_torch(image: torch.Tensor) -> torch.Tensor:
    """:func:`fft2c` on complex torch tensors (the same centred orthonormal convention; differentiable)."""
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(image, dim=_AXES), dim=_AXES, norm="ortho"),
                              dim=_AXES)


def ifft2c_torch(kspace: torch.Tensor) -> torch.Tensor:
    """:func:`ifft2c` on complex torch tensors (the same centred orthonormal convention; differentiable)."""
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(kspace, dim=_AXES), dim=_AXES, norm="ortho"),
                              dim=_AXES)
