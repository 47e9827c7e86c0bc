"""Multi-coil Cartesian MRI forward models for prepared slices, built on :class:`deepinv.physics.MultiCoilMRI`.

y_c = M . F(S_c x) with a centred orthonormal FFT; images are (B, 2, H, W) float32,
k-space is (B, 2, C, H, W). The measurement of a prepared slice is ``mask * stored k-space`` (not A applied
to the reference), as in the paper.
"""
from __future__ import annotations

import numpy as np
import torch
from deepinv.physics import MultiCoilMRI

from .data.prepared import PreparedSlice, check_mask
from .errors import DataError, where


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
    m = _as_mask(mask, b, (h, w))
    return MultiCoilMRI(mask=m.to(device), coil_maps=maps.to(device), img_size=(b, 2, h, w), device=device)


def complex_to_channels(x: torch.Tensor) -> torch.Tensor:
    """Complex (..., H, W) -> real (..., 2, ...) with (Re, Im) inserted at dim 1 of a batched tensor."""
    return torch.stack([x.real, x.imag], dim=1).float()


def _slice_mask(slc: PreparedSlice, mask):
    if mask is None:
        if slc.undersampled and slc.acquired_mask is not None:
            return torch.as_tensor(np.asarray(slc.acquired_mask, dtype=np.float32))
        raise DataError(where(slc.id, "no mask given and the slice has no acquired_mask"))
    return torch.as_tensor(mask)


def _measurement(slc: PreparedSlice, mask) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask (1, 1, N, N), y (1, 2, C, N, N)) from the stored k-space; checks the mask against it."""
    n = slc.kspace.shape[-2:]
    m = _as_mask(_slice_mask(slc, mask), 1, n, name=f"slice {slc.id}")
    kspace = torch.from_numpy(np.ascontiguousarray(slc.kspace, dtype=np.complex64))[None]  # (1, C, H, W)
    y = complex_to_channels(kspace) * m[:, :, None]
    return m, y


def slice_problem(slc: PreparedSlice, mask=None, device="cpu"):
    """``(y (1, 2, C, N, N), physics, x_ref (1, 2, N, N))`` for one prepared slice.

    ``mask`` is (N, N) (or (1, N, N) / (1, 1, N, N)); ``None`` uses the slice's ``acquired_mask`` for data
    that was acquired undersampled. ``x_ref`` is the stored reference (for undersampled raw data it is
    only the CG-SENSE image of what was acquired, not a ground truth).
    """
    m, y = _measurement(slc, mask)
    physics = build_physics(torch.from_numpy(np.asarray(slc.coil_maps, dtype=np.complex64)), m, device)
    x_ref = complex_to_channels(torch.from_numpy(np.asarray(slc.reference, dtype=np.complex64))[None])
    return y.to(device), physics, x_ref.to(device)


def batch_problems(slices, masks, device="cpu"):
    """Batched :func:`slice_problem`: ``(y (B, 2, C, N, N), physics, x_ref (B, 2, N, N))``.

    ``masks`` is one mask shared by all slices, a list with one mask (or ``None``) per slice, or a
    (B, N, N) tensor. All slices need the same coil count and grid.
    """
    slices = list(slices)
    if not slices:
        raise DataError("batch_problems needs at least one slice")
    if masks is None or (isinstance(masks, (torch.Tensor, np.ndarray)) and np.ndim(masks) == 2):
        masks = [masks] * len(slices)
    masks = list(masks)
    if len(masks) != len(slices):
        raise DataError(f"got {len(masks)} masks for {len(slices)} slices")
    shape = slices[0].kspace.shape
    for s in slices[1:]:
        if s.kspace.shape != shape:
            raise DataError(where(f"slice {s.id}", f"k-space shape {s.kspace.shape} differs from "
                                                   f"{shape} of slice {slices[0].id}; cannot batch"))
    parts = [_measurement(s, m) for s, m in zip(slices, masks)]
    mask = torch.cat([m for m, _ in parts])
    y = torch.cat([y for _, y in parts])
    maps = torch.from_numpy(np.stack([np.asarray(s.coil_maps, dtype=np.complex64) for s in slices]))
    x_ref = complex_to_channels(torch.from_numpy(np.stack([np.asarray(s.reference, dtype=np.complex64)
                                                           for s in slices])))
    return y.to(device), build_physics(maps, mask, device), x_ref.to(device)
