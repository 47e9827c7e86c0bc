"""Image channels of the priors: how complex images are laid out as real network channels.

A prior models C real channels, C even: K = C / 2 complex images (K = 1, C = 2 for one MRI image; K = 5, C = 10
for the subspace-compressed MRF time-series images). The one layout used everywhere (denoisers, HFS band
filters, training data) is **interleaved**: a complex stack z (B, K, H, W) is the real tensor x (B, 2K, H, W) with

.. math::

    x_{2k} = \\operatorname{Re} z_k,\\qquad x_{2k+1} = \\operatorname{Im} z_k,

i.e. ``x = [Re z_0, Im z_0, Re z_1, Im z_1, ...]``: torch's ``view_as_real`` order, so K = 1 is the (B, 2, H, W)
real/imaginary pair the 2-channel priors always took.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError

#: Image channels of a prior when its model config does not say (real and imaginary part of one image).
DEFAULT_IMAGE_CHANNELS = 2


def check_image_channels(value, what: str = "'image_channels'") -> int:
    """``value`` as an even int >= 2 (real/imaginary pairs); :class:`ConfigError` naming ``what`` otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 2 or value % 2:
        raise ConfigError(f"{what} must be an even integer >= 2 (a real and an imaginary channel per complex "
                          f"image), got {f'{type(value).__name__} {value!r}'[:60]}")
    return int(value)


def complex_to_real_channels(z: torch.Tensor) -> torch.Tensor:
    """Complex (B, K, *S) -> real (B, 2K, *S), interleaved [Re z_0, Im z_0, Re z_1, ...] (module docstring)."""
    B, K = z.shape[:2]
    return torch.view_as_real(z).movedim(-1, 2).reshape(B, 2 * K, *z.shape[2:])


def real_channels_to_complex(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`complex_to_real_channels`: real (B, 2K, *S) -> complex (B, K, *S)."""
    B, C = x.shape[:2]
    if C % 2:
        raise ValueError(f"expected an even number of real/imaginary channels, got {tuple(x.shape)}")
    return torch.view_as_complex(x.reshape(B, C // 2, 2, *x.shape[2:]).movedim(2, -1).contiguous())
