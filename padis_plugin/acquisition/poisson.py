"""2-D variable-density Poisson-disc masks (:func:`sigpy.mri.poisson`) with a fully sampled ACS square.

sigpy draws the points in a numba-compiled loop that seeds numba's own generator with ``seed``: the same seed
gives the same mask (for a given sigpy / numba version), and numpy's global random state is left untouched.
sigpy searches the density slope until the achieved R is within 0.1 of the requested one, so the achieved R
is reported (:attr:`PoissonDisc.approximate_rate`), not assumed.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from .masks import MAX_ACCELERATION, SeededMaskGenerator, acs_lines_for, grid_shape
from .base import Acquisition

RATE_TOLERANCE = 0.1  # sigpy's default: |achieved R - requested R| < 0.1


def poisson_mask(shape, acceleration: float, acs_lines: int, seed: int = 0) -> torch.Tensor:
    """Variable-density Poisson-disc mask (H, W) float32 0/1 with a centred ``acs_lines`` square sampled
    (rows and columns ``(N - acs) // 2 ..``, as the Cartesian ACS block).

    :raises ConfigError: R outside (1, 16], an ACS square that does not fit or leaves no room for R, a seed
        outside [0, 2**32), or R that sigpy cannot reach within 0.1.
    """
    import sigpy.mri  # here: sigpy (numba) is slow to import and only this kind needs it

    h, w = grid_shape(shape)
    acceleration, acs_lines, seed = float(acceleration), int(acs_lines), int(seed)
    if not 1.0 < acceleration <= MAX_ACCELERATION:
        raise ConfigError(f"Poisson-disc R={acceleration:g} is outside (1, {MAX_ACCELERATION:g}]")
    if not 0 <= acs_lines <= min(h, w) or acs_lines ** 2 > h * w / acceleration:
        raise ConfigError(f"a {acs_lines} x {acs_lines} ACS square does not fit a {h} x {w} mask at "
                          f"R={acceleration:g}")
    if not 0 <= seed < 2 ** 32:
        raise ConfigError(f"Poisson-disc seed must be in [0, 2**32), got {seed}")
    try:
        mask = sigpy.mri.poisson((h, w), acceleration, calib=(acs_lines, acs_lines), dtype=np.float32,
                                 seed=seed, tol=RATE_TOLERANCE)
    except ValueError as exc:  # sigpy: "Cannot generate mask to satisfy accel=..."
        raise ConfigError(f"Poisson-disc mask {h} x {w}, R={acceleration:g}, ACS {acs_lines}: {exc}") from None
    r0, c0 = (h - acs_lines) // 2, (w - acs_lines) // 2
    if not (np.isin(mask, (0, 1)).all() and mask[r0:r0 + acs_lines, c0:c0 + acs_lines].all()):
        raise AssertionError("sigpy.mri.poisson returned a non-binary mask or one without its ACS square")
    return torch.from_numpy(np.ascontiguousarray(mask))


class PoissonDisc(Acquisition):
    """:func:`poisson_mask` per seed; ``acs_lines`` None: 24 at W = 384 scaled to W. Masks are kept per
    (shape, seed): sigpy takes a fraction of a second for each, and a benchmark asks again per slice."""

    kind = "poisson"
    approximate_rate = True

    def __init__(self, acceleration: float, acs_lines: int | None = None):
        self.acceleration, self.acs_lines = float(acceleration), acs_lines
        self._masks: dict = {}

    def acs_on(self, width: int) -> int:
        return acs_lines_for(width, self.acs_lines)

    def sample(self, shape, seed: int = 0) -> torch.Tensor:
        h, w = grid_shape(shape)
        key = (h, w, int(seed))
        if key not in self._masks:
            self._masks[key] = poisson_mask((h, w), self.acceleration, acs_lines_for(w, self.acs_lines), seed)
        return self._masks[key].clone()


class PoissonDiscMaskGenerator(SeededMaskGenerator):
    """2-D Poisson-disc masks (:func:`poisson_mask`, a ``n_center`` x ``n_center`` ACS square) as a deepinv mask
    generator; parameters and seeding as :class:`~.masks.CartesianMaskGenerator`. Each mask's achieved R is
    within 0.1 of ``acceleration`` (sigpy's search), so ``n_lines`` (deepinv's count of 1-D lines) is nominal."""

    def check(self, W: int) -> None:
        if not 1.0 < self.acc <= MAX_ACCELERATION:
            raise ConfigError(f"Poisson-disc R={self.acc:g} is outside (1, {MAX_ACCELERATION:g}]")

    def get_pdf(self, W: int | None = None) -> torch.Tensor:
        """Share of each column sampled, from the mask of seed 0 (the density is 2-D; deepinv's pdf is 1-D)."""
        H, W = self.H, (self.W if W is None else int(W))
        return poisson_mask((H, W), self.acc, self.n_center, 0).mean(0).to(**self.factory_kwargs)

    def mask_fn(self, shape, seed: int) -> torch.Tensor:
        return poisson_mask(shape, self.acc, self.n_center, seed % 2**32)
