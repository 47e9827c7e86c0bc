"""The acquisition concept: which k-space samples a scan takes, and the forward model that follows from them.

As deepinv's ``PhysicsGenerator.step()`` feeds ``physics.update(**params)``, an :class:`Acquisition` draws the
parameters of one scan (:meth:`~Acquisition.sample`: a mask, the same for the same seed) and :meth:`~Acquisition.
measure` turns a prepared item into the measurement :class:`~.problem.Problem` ``(y, physics, x_ref, info)``.
Every kind so far samples the Cartesian grid, so y is the masked stored k-space; a non-Cartesian acquisition
overrides :meth:`~Acquisition.measure` (its y is not on the grid, its physics not a masked FFT) and the callers
(the benchmark, ``padis-recon``, the solvers) stay as they are: they read ``y``, ``physics`` and ``info``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch

from .physics import build_physics, image_channels, masked_kspace
from .problem_types import Problem, ProblemInfo


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

    def acs_on(self, width: int) -> int | None:
        """The fully sampled centre on a grid ``width`` wide (None: this kind has none, e.g. given masks)."""
        return None

    def step(self, shape, seed: int = 0) -> dict:
        """:meth:`sample` as the parameters of ``physics.update(**params)``: ``{"mask": (1, 1, H, W)}``."""
        return {"mask": self.sample(shape, seed)[None, None]}

    def measure(self, item, seed: int = 0, device="cpu") -> Problem:
        """The problem of a prepared slice ``item`` (its k-space (C, H, W), coil maps and reference) scanned
        with this acquisition's mask of ``seed``: ``y`` (1, 2, C, H, W), a ``MultiCoilMRI``, ``x_ref``
        (1, 2, H, W), and ``info`` (the mask as the pattern, the ACS size; the achieved R where it only
        approximates R)."""
        mask = self.sample(np.shape(item.kspace)[-2:], seed)
        mask_t, y = masked_kspace(item.kspace, mask, name=f"slice {item.id}")
        maps = torch.as_tensor(np.asarray(item.coil_maps, dtype=np.complex64))
        info = ProblemInfo(pattern=np.asarray(mask, dtype=np.float32),
                           achieved_R=achieved_acceleration(mask) if self.approximate_rate else None,
                           acs_lines=self.acs_on(mask.shape[-1]))
        return Problem(y.to(device), build_physics(maps, mask_t, device), image_channels(item.reference).to(device),
                       info)
