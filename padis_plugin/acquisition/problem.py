"""A prepared slice and an acquisition -> the measurement :class:`Problem` ``(y, physics, x_ref, info)``."""
from __future__ import annotations

import numpy as np
import torch

from ..data.prepared import PreparedSlice
from ..errors import DataError, where
from .physics import build_physics, image_channels, masked_kspace
from .base import Acquisition
from .problem_types import Problem
from .stored import AcquiredMask, StoredMasks


def make_problem(slc: PreparedSlice, acquisition: Acquisition, seed: int = 0, device="cpu") -> Problem:
    """The :class:`Problem` ``(y (1, 2, C, N, N), physics, x_ref (1, 2, N, N), info)`` of slice ``slc``
    scanned by ``acquisition`` with mask seed ``seed``; it unpacks as ``y, physics, x_ref``.

    ``x_ref`` is the stored reference (for data acquired undersampled only the CG-SENSE image of what was
    acquired, not a ground truth)."""
    return acquisition.measure(slc, seed, device)


def slice_problem(slc: PreparedSlice, mask=None, device="cpu"):
    """:func:`make_problem` under a given mask, (N, N) (or (1, N, N) / (1, 1, N, N)); ``None`` uses the
    slice's ``acquired_mask`` for data that was acquired undersampled."""
    acquisition = AcquiredMask(slc) if mask is None else StoredMasks(torch.as_tensor(mask)[None])
    return make_problem(slc, acquisition, 0, device)


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
    parts = [masked_kspace(s.kspace, AcquiredMask(s).sample(shape) if m is None else m, name=f"slice {s.id}")
             for s, m in zip(slices, masks)]
    mask = torch.cat([m for m, _ in parts])
    y = torch.cat([y for _, y in parts])
    maps = torch.from_numpy(np.stack([np.asarray(s.coil_maps, dtype=np.complex64) for s in slices]))
    x_ref = torch.cat([image_channels(s.reference) for s in slices])
    return y.to(device), build_physics(maps, mask, device), x_ref.to(device)
