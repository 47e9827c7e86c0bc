"""What every sampler on an HFS prior shares: the prior's loading and the low-band start (HFS-SDE: the low
frequencies are measured, only the high band is diffused)."""
from __future__ import annotations

import torch

from ..errors import ConfigError, DataError
from ..prior.hfs import high_pass, low_band_mask
from .noise_level import require_gridded_kspace
from .prior_loading import load_denoiser


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


def load_hfs_prior(p, solver: str, device):
    """The HFS denoiser of a factory's params ``p`` (``checkpoint`` and, for a ``patch-hfs`` prior, the patch
    settings given); ConfigError naming ``solver`` for a prior without a high band or a misplaced patch setting."""
    from ..prior.families import checkpoint_family

    family = checkpoint_family(p.checkpoint)
    if not family.hfs:
        raise ConfigError(f"solver {solver!r}: checkpoint {p.checkpoint!r} is a {family.name!r} prior; {solver} "
                          "needs one trained with noise in the high band (kind 'hfs' or 'patch-hfs')")
    overrides = {k: getattr(p, k) for k in ("patch_size", "pad", "max_batch") if getattr(p, k) is not None}
    if overrides and not family.patches:
        raise ConfigError(f"solver {solver!r}: {sorted(overrides)} are patch settings; {p.checkpoint!r} is a "
                          "whole-image prior")
    return load_denoiser(family.name, p.checkpoint, device, **overrides)
