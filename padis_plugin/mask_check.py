"""The one check every sampling mask passes, wherever it comes from (a prepared file, a mask file, a generator)."""
from __future__ import annotations

import numpy as np
import torch

from .errors import DataError, where


def check_mask(mask, name=None, what: str = "mask") -> None:
    """Refuse a sampling mask that is non-finite, not binary (0/1) or empty (all zeros): :class:`DataError`
    ``"<name>: <what> ..."``. Accepts numpy arrays and torch tensors of any shape (boolean masks pass)."""
    m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
    if m.dtype == torch.bool:
        if not bool(m.any()):
            raise DataError(where(name, f"{what} samples nothing (all zeros)"))
        return
    if m.is_complex():
        raise DataError(where(name, f"{what} must be real-valued 0/1, got dtype {m.dtype}"))
    if not (m.is_floating_point() or m.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)):
        raise DataError(where(name, f"{what} must be numeric 0/1, got dtype {m.dtype}"))
    if m.numel() == 0:
        raise DataError(where(name, f"{what} is empty (shape {tuple(m.shape)})"))
    finite = torch.isfinite(m) if m.is_floating_point() else torch.ones_like(m, dtype=torch.bool)
    if not bool(finite.all()):
        raise DataError(where(name, f"{what} holds {int((~finite).sum())} non-finite (NaN or inf) value(s)"))
    binary = (m == 0) | (m == 1)
    if not bool(binary.all()):
        odd = m[~binary].flatten()[0].item()
        raise DataError(where(name, f"{what} holds values other than 0 and 1 (e.g. {odd:g}); weighted or "
                                    "soft masks are not supported: give a binary 0/1 sampling mask"))
    if not bool((m != 0).any()):
        raise DataError(where(name, f"{what} samples nothing (all zeros)"))
