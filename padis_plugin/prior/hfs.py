r"""HFS-SDE priors (Cao et al., IEEE TMI 2024, arXiv 2208.05481) in variance-exploding form: the high-frequency
projector and the whole-image / patch denoisers trained with noise in the high band only.

The low band is a block of ``width`` central phase-encode columns of k-space, all readout rows: the axis the
1-D Cartesian masks of :mod:`padis_plugin.acquisition.masks` choose lines along (the last one, W), starting at
``(W - width) // 2`` as their ACS block does, so a band no wider than the ACS lies inside it. With the centred
orthonormal FFT :math:`F` of :mod:`padis_plugin.kspace` (deepinv's ``MultiCoilMRI`` convention):

.. math::

    P = F^H\,\mathrm{diag}(m_{lf})\,F, \qquad Q = I - P = F^H\,\mathrm{diag}(1 - m_{lf})\,F,

both orthogonal projections. The HFS forward process in VE coordinates is :math:`x_t = x_0 + \sigma Q n`: the
low band :math:`P x_0` is never noised. Because :math:`m_{lf}` spans every row, :math:`Q` acts along W only
(:math:`Q = I_H \otimes Q_W`), so it may be applied to any block of full-width rows (patch training uses this).
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from ..kspace import fft2c_torch, ifft2c_torch
from .channels import complex_to_real_channels, real_channels_to_complex
from .denoiser import HFS_KEYS, EDMDenoiser, PaDISDenoiser, check_band_width_setting, deepinv_inputs, whole_number

#: The released HFS-SDE band: 16 of 320 columns.
DEFAULT_BAND_FRACTION = 16 / 320


def default_band_width(width: int) -> int:
    """Low-band columns for a grid ``width`` wide: 16/320 of it, rounded, at least 1 (13 at 256, 19 at 384)."""
    return max(1, int(round(DEFAULT_BAND_FRACTION * int(width))))


def check_band_width(band_width, width: int) -> int:
    """``band_width`` (``None``: :func:`default_band_width`) as an int in [1, width]; ConfigError otherwise."""
    if band_width is None:
        return default_band_width(width)
    n = whole_number(band_width)
    if n is None or not 1 <= n <= width:
        raise ConfigError(f"band_width must be an integer in [1, {width}] (the grid width), got {band_width!r}"[:200])
    return n


def low_band_mask(width: int, band_width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """:math:`m_{lf}` as a (W,) 0/1 vector over phase-encode columns: ``band_width`` columns from
    ``(W - band_width) // 2`` (broadcasts over rows, coils and channels)."""
    band_width = check_band_width(band_width, width)
    m = torch.zeros(int(width), device=device, dtype=dtype)
    start = (int(width) - band_width) // 2
    m[start:start + band_width] = 1
    return m


def _kspace_filter(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Each complex image of ``x`` (B, C, ..., H, W) (:mod:`.channels` layout) filtered in k-space by ``keep``."""
    z = ifft2c_torch(fft2c_torch(real_channels_to_complex(x.float())) * keep)
    return complex_to_real_channels(z).to(x.dtype)


def high_pass(x: torch.Tensor, band_width: int) -> torch.Tensor:
    """:math:`Q x` for real/imaginary channel images ``x`` (B, C, ..., H, W), C even (:mod:`.channels`): the low
    band's k-space columns of every complex image zeroed."""
    return _kspace_filter(x, 1 - low_band_mask(x.shape[-1], band_width, x.device))


def low_pass(x: torch.Tensor, band_width: int) -> torch.Tensor:
    """:math:`P x = x - Q x`: only the low band's k-space columns kept."""
    return _kspace_filter(x, low_band_mask(x.shape[-1], band_width, x.device))


class _HFSSettings:
    """Band settings shared by the two HFS denoisers: ``band_width`` (None: the grid's default) and
    ``keep_low_band`` (True: the output's low band is the input's, :math:`P D = P x`)."""

    hfs_keys = HFS_KEYS

    def _init_hfs(self, band_width, keep_low_band):
        self.band_width = check_band_width_setting(band_width)  # the grid bound is checked per call
        if not isinstance(keep_low_band, (bool, np.bool_)):  # bool("no") would be True
            raise ConfigError(f"keep_low_band must be True or False, got {keep_low_band!r}"[:200])
        self.keep_low_band = bool(keep_low_band)

    def band_for(self, width: int) -> int:
        return check_band_width(self.band_width, width)

    @property
    def config(self) -> dict:  # the denoiser's own config (next in the MRO) plus the band settings
        return {**super().config, "band_width": self.band_width, "keep_low_band": self.keep_low_band}

    @deepinv_inputs
    def forward(self, x, sigma, generator=None, **kwargs):
        out = super().forward(x, sigma, generator=generator)
        if not self.keep_low_band:
            return out
        w = self.band_for(x.shape[-1])
        return low_pass(x, w) + high_pass(out, w)


class HFSDenoiser(_HFSSettings, EDMDenoiser):
    r"""Whole-image HFS denoiser :math:`D_\theta(x_0 + \sigma Q n, \sigma)` (kind ``hfs``): an EDM denoiser
    trained with noise only in the high band (:class:`~padis_plugin.train.loss.HFSLoss`).

    :param EDMPrecond precond: C-in / C-out preconditioned network (C = 2 for one MRI image).
    :param int band_width: low-band columns :math:`m_{lf}` it was trained for (None: the grid's default).
    :param bool keep_low_band: return :math:`P x + Q D` (the low band untouched).
    """

    kind = "hfs"
    settings = _HFSSettings.hfs_keys

    def __init__(self, precond, band_width: int | None = None, keep_low_band: bool = False, generator=None,
                 seed=None, rng=None):
        super().__init__(precond, generator=generator, seed=seed, rng=rng)
        self._init_hfs(band_width, keep_low_band)


class PatchHFSDenoiser(_HFSSettings, PaDISDenoiser):
    r"""Patch HFS denoiser (kind ``patch-hfs``): the PaDIS patch tiling of :class:`PaDISDenoiser` around a patch
    network trained on crops of :math:`x_0 + \sigma Q n` (:class:`~padis_plugin.train.loss.PatchHFSLoss`).

    Patch settings as :class:`PaDISDenoiser`; ``band_width`` and ``keep_low_band`` as :class:`HFSDenoiser`.
    """

    kind = "patch-hfs"
    settings = PaDISDenoiser.settings + _HFSSettings.hfs_keys

    def __init__(self, precond, patch_size: int = 64, pad: int = 64, max_batch=None, position_convention="image",
                 canvas_pad=None, band_width: int | None = None, keep_low_band: bool = False, generator=None,
                 seed=None, rng=None):
        super().__init__(precond, patch_size, pad, max_batch, position_convention, canvas_pad, generator, seed,
                         rng=rng)
        self._init_hfs(band_width, keep_low_band)
