"""What an acquisition hands a solver: the measurement problem ``(y, physics, x_ref)`` and what reports need."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class ProblemInfo:
    """What reports and figures need of a scan, whatever its kind.

    ``pattern``: a picture of the sampling (the (H, W) mask of a Cartesian scan, the k-space density of a
    trajectory) or None; ``achieved_R``: the acceleration achieved where it only approximates the nominal one
    (None: it is the nominal R); ``acs_lines``: the fully sampled centre (lines, or the side of a square) on
    this grid, None where the scan has none; ``extra``: anything task-specific (e.g. an MRF item's maps)."""

    pattern: np.ndarray | None = None
    achieved_R: float | None = None
    acs_lines: int | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Problem:
    """A measurement problem: ``y`` and ``physics`` as every deepinv solver takes them, the reference
    ``x_ref`` (None where there is none) and :class:`ProblemInfo`.

    It unpacks as the triple ``y, physics, x_ref = problem``, so code written for that keeps working."""

    y: torch.Tensor
    physics: object
    x_ref: torch.Tensor | None
    info: ProblemInfo = field(default_factory=ProblemInfo)

    def __iter__(self):
        return iter((self.y, self.physics, self.x_ref))
