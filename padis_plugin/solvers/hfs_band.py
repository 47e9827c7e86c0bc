"""What every sampler on an HFS prior shares: the low-band start (HFS-SDE: the low frequencies are measured,
only the high band is diffused)."""
from __future__ import annotations

import torch

from ..errors import DataError
from ..prior.hfs import high_pass, low_band_mask
from .noise_level import require_gridded_kspace


def high_band_start(y, physics, band_width: int, sigma0: float, noise, name: str) -> torch.Tensor:
    r"""The HFS start :math:`A^H(m_{lf} \odot y) + \sigma_0 Q z`: the measured low band, noise only in the high
    band. ``noise(x)`` draws :math:`z` shaped as ``x``; DataError if the mask misses a column of the band."""
    require_gridded_kspace(y, physics, name, "the HFS low band (central k-space columns)")
    m_lf = low_band_mask(y.shape[-1], band_width, y.device, y.dtype)
    mask = getattr(physics, "mask", None)
    if isinstance(mask, torch.Tensor) and not bool((mask[..., m_lf.bool()] > 0).all()):
        raise DataError(f"{name}: the sampling mask does not sample all {band_width} central columns of the "
                        f"prior's low band: use a mask whose ACS holds the band, or a narrower band_width")
    with torch.no_grad():
        x_low = physics.A_adjoint(y * m_lf)
    return x_low + sigma0 * high_pass(noise(x_low), band_width)
