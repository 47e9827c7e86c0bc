"""Given masks: a stack addressed by seed (e.g. a ``.npy`` file), and the slice's own acquired mask."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError, where
from .masks import load_mask_file
from .base import Acquisition


class StoredMasks(Acquisition):
    """Masks given as an (H, W) or (K, H, W) array: seed k takes mask k. They are checked (binary, finite,
    on the k-space grid) where they meet the k-space, so the error names the slice."""

    kind = "file"

    def __init__(self, masks, name=None, acceleration: float | None = None):
        m = torch.as_tensor(np.asarray(masks) if not isinstance(masks, torch.Tensor) else masks)
        self.masks, self.name, self.acceleration = (m[None] if m.ndim == 2 else m), name, acceleration

    @classmethod
    def from_file(cls, path, shape=None, acceleration: float | None = None) -> "StoredMasks":
        """The masks of a ``.npy`` file (:func:`~padis_plugin.acquisition.masks.load_mask_file`: checked on loading)."""
        return cls(torch.from_numpy(load_mask_file(path, shape)), Path(path), acceleration)

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    def sample(self, shape, seed: int = 0) -> torch.Tensor:
        if not 0 <= int(seed) < len(self):
            raise ConfigError(where(self.name, f"mask seed {seed} indexes past the {len(self)} stored masks"))
        return self.masks[int(seed)]


class AcquiredMask(StoredMasks):
    """The mask a slice acquired undersampled was scanned with (raw undersampled data); every seed gives it."""

    kind = "acquired"

    def __init__(self, slc):
        if not slc.undersampled or slc.acquired_mask is None:
            raise DataError(where(slc.id, "no mask given and the slice has no acquired_mask"))
        super().__init__(np.asarray(slc.acquired_mask, dtype=np.float32), f"slice {slc.id}")

    def sample(self, shape, seed: int = 0) -> torch.Tensor:
        return self.masks[0]
