"""1-D Cartesian lines: the paper's masks (:func:`padis_plugin.acquisition.masks.cartesian_mask`) as an acquisition."""
from __future__ import annotations

import torch

from .masks import acs_lines_for, cartesian_mask, grid_shape
from .base import Acquisition


class CartesianLines(Acquisition):
    """``floor(W / R)`` random phase-encode lines with a centred block of ``acs_lines`` (None: 24 at W = 384,
    scaled to W); the mask of a seed is :func:`~padis_plugin.acquisition.masks.cartesian_mask` of that seed, bit for bit."""

    kind = "cartesian"

    def __init__(self, acceleration: float, acs_lines: int | None = None):
        self.acceleration, self.acs_lines = float(acceleration), acs_lines

    def acs_on(self, width: int) -> int:
        return acs_lines_for(width, self.acs_lines)

    def sample(self, shape, seed: int = 0) -> torch.Tensor:
        h, w = grid_shape(shape)
        return cartesian_mask((h, w), self.acceleration, acs_lines_for(w, self.acs_lines), seed)
