"""The acquisition concept: which k-space samples a scan takes, and the forward model that follows from them.

As deepinv's ``PhysicsGenerator.step()`` feeds ``physics.update(**params)``, an :class:`Acquisition` draws the
parameters of one scan (:meth:`~Acquisition.sample`: a mask, the same for the same seed) and :meth:`~Acquisition.
measure` turns stored k-space and coil maps into ``(y, physics)``. Every kind so far samples the Cartesian grid,
so y is the masked stored k-space; a non-Cartesian trajectory overrides :meth:`~Acquisition.measure` (its y is
interpolated off the grid, its physics not a masked FFT) and the callers stay as they are.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch

from ..physics import build_physics, masked_kspace


def achieved_acceleration(mask) -> float:
    """R a mask achieves: grid points over sampled points."""
    m = torch.as_tensor(mask)
    return float(m.numel() / m.count_nonzero())


class Acquisition(ABC):
    """One way of sampling k-space. ``acceleration`` is the nominal R (None where the masks are given),
    ``acs_lines`` the fully sampled centre (lines, or the side of a square), ``kind`` the config's name for it.
    ``approximate_rate``: the achieved R only approximates the nominal one, so results report it."""

    kind: ClassVar[str]
    approximate_rate: ClassVar[bool] = False
    acceleration: float | None = None
    acs_lines: int | None = None

    @abstractmethod
    def sample(self, shape, seed: int = 0) -> torch.Tensor:
        """The (H, W) float32 0/1 mask of one scan on grid ``shape`` (``N`` or ``(H, W)``), fixed by ``seed``."""

    def step(self, shape, seed: int = 0) -> dict:
        """:meth:`sample` as the parameters of ``physics.update(**params)``: ``{"mask": (1, 1, H, W)}``."""
        return {"mask": self.sample(shape, seed)[None, None]}

    def measure(self, kspace, coil_maps, seed: int = 0, device="cpu", name=None):
        """``(y (1, 2, C, H, W), physics)`` of stored k-space (C, H, W) and coil maps under this scan's mask;
        ``name`` labels mask errors (e.g. the slice)."""
        mask, y = masked_kspace(kspace, self.sample(np.shape(kspace)[-2:], seed), name=name)
        maps = torch.as_tensor(np.asarray(coil_maps, dtype=np.complex64))
        return y.to(device), build_physics(maps, mask, device)
