"""Multi-coil Cartesian MRI forward models, built on :class:`deepinv.physics.MultiCoilMRI`, from arrays.

y_c = M . F(S_c x) with a centred orthonormal FFT; images are (B, 2, H, W) float32,
k-space is (B, 2, C, H, W). The measurement of stored k-space is ``mask * k-space`` (not A applied to the
reference), as in the paper. :mod:`padis_plugin.acquisition` turns a prepared slice into a problem.
"""
from __future__ import annotations

import numpy as np
import torch
from deepinv.physics import MultiCoilMRI

from ..mask_check import check_mask
from ..errors import DataError, where


def _as_complex_maps(coil_maps) -> torch.Tensor:
    maps = torch.as_tensor(coil_maps)
    if not maps.is_complex():
        raise DataError(f"coil_maps must be complex, got dtype {maps.dtype}")
    if maps.ndim == 3:
        maps = maps[None]
    if maps.ndim != 4:
        raise DataError(f"coil_maps must be (C, H, W) or (B, C, H, W), got {tuple(maps.shape)}")
    return maps.to(torch.complex64)


def _as_mask(mask, batch: int, hw: tuple[int, int], name=None) -> torch.Tensor:
    """Mask as (B, 1, H, W) float32: deepinv broadcasts dim 1 over the real/imag channels and coils.

    Accepts (H, W), (B, H, W), (B, 1, H, W) and deepinv's (B, 2, H, W) layout (one copy per real/imag
    channel, which must agree). The mask must be binary (0/1; weighted masks are not supported), finite, and
    sample at least one k-space location per batch element: :class:`DataError` otherwise."""
    check_mask(mask, name)
    m = torch.as_tensor(mask).float()
    if m.ndim == 2:
        m = m[None]
    if m.ndim == 3:
        m = m[:, None]
    if m.ndim == 4 and m.shape[1] == 2:
        if not torch.equal(m[:, 0], m[:, 1]):
            raise DataError(where(name, "mask of shape (B, 2, H, W) has different real and imaginary channels"))
        m = m[:, :1]
    if m.ndim != 4 or m.shape[1] != 1 or tuple(m.shape[-2:]) != tuple(hw) or m.shape[0] not in (1, batch):
        raise DataError(where(name, f"mask shape {tuple(torch.as_tensor(mask).shape)} does not match k-space "
                                    f"(batch {batch}, {hw[0]} x {hw[1]})"))
    empty = [i for i in range(m.shape[0]) if not bool(m[i].any())]
    if empty:
        raise DataError(where(name, f"mask {empty[0]} of the batch samples nothing (all zeros)"))
    return m.expand(batch, 1, *hw).contiguous()


def build_physics(coil_maps, mask, device="cpu") -> MultiCoilMRI:
    """:class:`~deepinv.physics.MultiCoilMRI` from complex coil maps (B, C, H, W) / (C, H, W) and a mask
    (H, W), (B, H, W), (B, 1, H, W) or deepinv's (B, 2, H, W)."""
    maps = _as_complex_maps(coil_maps)
    b, _, h, w = maps.shape
    check_coil_maps(maps)
    m = _as_mask(mask, b, (h, w))
    return MultiCoilMRI(mask=m.to(device), coil_maps=maps.to(device), img_size=(b, 2, h, w), device=device)


#: the share of pixels whose coil maps may be (near) zero (RSS < 1e-3) before the maps are refused: ESPIRiT's
#: unit-RSS maps cover the field of view; maps from too narrow a calibration block come back zero everywhere
#: (8 ACS lines at 128 x 128 in deepinv's MRISliceTransform), and every solver then sees no signal
MAX_EMPTY_MAP_FRACTION = 0.9


def check_coil_maps(maps: torch.Tensor, name: str = "coil maps") -> None:
    """DataError when (nearly) every pixel of a slice's coil maps is zero, or a map is not finite."""
    if not bool(torch.isfinite(torch.view_as_real(maps)).all()):
        raise DataError(f"{name}: non-finite values")
    rss = torch.linalg.vector_norm(maps, dim=1)                     # (B, H, W)
    empty = (rss < 1e-3).flatten(1).float().mean(dim=1)
    for b, share in enumerate(empty.tolist()):
        if share > MAX_EMPTY_MAP_FRACTION:
            raise DataError(f"{name}{f' of slice {b}' if maps.shape[0] > 1 else ''} are zero on {share:.0%} of "
                            "the image: the sensitivity estimate found nothing (ESPIRiT from too narrow a "
                            "calibration (ACS) block?); estimate them from more central lines")


def check_physics_coil_maps(physics) -> None:
    """:func:`check_coil_maps` on a deepinv ``MultiCoilMRI``'s maps (a solver's first look at a physics built
    elsewhere, e.g. from deepinv's ``MRISliceTransform``); other physics pass."""
    maps = getattr(physics, "coil_maps", None)
    if isinstance(maps, torch.Tensor) and maps.is_complex() and maps.dim() >= 3:
        check_coil_maps(maps if maps.dim() >= 4 else maps[None], "the physics' coil maps")


def complex_to_channels(x: torch.Tensor) -> torch.Tensor:
    """Complex (..., H, W) -> real (..., 2, ...) with (Re, Im) inserted at dim 1 of a batched tensor."""
    return torch.stack([x.real, x.imag], dim=1).float()


def image_channels(image) -> torch.Tensor:
    """A complex (H, W) image (numpy or torch) as the (1, 2, H, W) float32 tensor deepinv expects."""
    return complex_to_channels(torch.as_tensor(np.asarray(image, dtype=np.complex64))[None])


def masked_kspace(kspace, mask, name=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mask (1, 1, H, W), y (1, 2, C, H, W))``: stored k-space (C, H, W) under a mask checked against it."""
    kspace = torch.as_tensor(np.ascontiguousarray(kspace, dtype=np.complex64))[None]  # (1, C, H, W)
    m = _as_mask(mask, 1, tuple(kspace.shape[-2:]), name=name)
    return m, complex_to_channels(kspace) * m[:, :, None]
