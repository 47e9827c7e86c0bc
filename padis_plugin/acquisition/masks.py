"""1-D Cartesian undersampling masks (the validation masks of the published PaDIS-MRI code).

Lines run along the first axis (readout, H) and are chosen along the second (phase encode, W):
``floor(W / R)`` columns in total, a centred fully sampled block of ``acs_lines`` columns starting at
``(W - acs_lines) // 2``, and the rest drawn uniformly *without replacement* from the other columns.

Why not :class:`deepinv.physics.generator.RandomMaskGenerator`: it takes the ACS size as
``int(center_fraction * W)`` (a float round trip that can lose a line, e.g. ``int(20/384*384)`` is not
guaranteed to be 20), centres an odd block at ``W//2 - n//2`` rather than ``(W - n)//2``, draws with a
torch generator, and refuses masks whose lines are all ACS lines. The paper's masks are a few lines of
numpy; we reproduce them exactly, seeded with ``numpy.random.default_rng(seed)`` (the published code
forgot to seed, so its masks are not reproducible).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from deepinv.physics.generator import BaseMaskGenerator

from ..data.files import load_npy
from ..mask_check import check_mask
from ..errors import ConfigError, DataError, where

__all__ = ["MAX_ACCELERATION", "CartesianMaskGenerator", "SeededMaskGenerator", "acs_lines_for", "cartesian_mask", "cartesian_masks",
           "check_mask", "default_acs_lines", "grid_shape", "load_mask_file", "n_lines"]

MAX_ACCELERATION = 16.0
PAPER_ACS_LINES, PAPER_GRID = 24, 384  # the paper's fully sampled centre: 24 of 384 phase-encode lines


def grid_shape(shape) -> tuple[int, int]:
    """``N`` or ``(H, W)`` as a positive ``(H, W)``; :class:`ConfigError` otherwise."""
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape), int(shape))
    try:
        h, w = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise ConfigError(f"mask shape must be an int or (H, W), got {shape!r}") from None
    if h <= 0 or w <= 0:
        raise ConfigError(f"mask shape must be positive, got {(h, w)}")
    return h, w


def n_lines(width: int, acceleration: float) -> int:
    """Total number of sampled phase-encode lines, ``floor(W / R)``."""
    return int(math.floor(width / float(acceleration)))


def _columns(width: int, acceleration: float, acs_lines: int, seed: int) -> np.ndarray:
    total = n_lines(width, acceleration)
    start = (width - acs_lines) // 2
    acs = np.arange(start, start + acs_lines)
    others = np.setdiff1d(np.arange(width), acs)
    rng = np.random.default_rng(seed)
    extra = rng.choice(others, size=total - acs_lines, replace=False)
    return np.concatenate([acs, extra])


def _check(width: int, acceleration: float, acs_lines: int) -> None:
    try:
        acceleration = float(acceleration)
    except (TypeError, ValueError):
        raise ConfigError(f"acceleration must be a number, got {acceleration!r}") from None
    if not (1.0 <= acceleration <= MAX_ACCELERATION):
        raise ConfigError(f"acceleration R={acceleration} is outside [1, {MAX_ACCELERATION:g}]")
    if not isinstance(acs_lines, (int, np.integer)) or acs_lines < 0:
        raise ConfigError(f"acs_lines must be a non-negative integer, got {acs_lines!r}")
    total = n_lines(width, acceleration)
    if acs_lines > total:
        raise ConfigError(f"acs_lines={acs_lines} exceeds the floor(W/R)={total} lines of W={width}, "
                          f"R={acceleration:g}")


def cartesian_mask(shape, acceleration: float, acs_lines: int = 24, seed: int = 0) -> torch.Tensor:
    """Random uniform 1-D Cartesian mask (H, W) float32 with ``floor(W/R)`` lines incl. a centred ACS block.

    :param shape: ``N`` or ``(H, W)``.
    :param float acceleration: R in [1, 16]; non-integer values allowed (effective R = W / floor(W/R)).
    :param int acs_lines: fully sampled centre columns ``(W - acs) // 2 .. + acs``.
    :param int seed: seed of ``numpy.random.default_rng``; same seed, same mask.
    :raises ConfigError: on R out of range, negative or too many ACS lines, non-positive shape.
    """
    h, w = grid_shape(shape)
    _check(w, acceleration, acs_lines)
    mask = np.zeros((h, w), dtype=np.float32)
    mask[:, _columns(w, acceleration, int(acs_lines), seed)] = 1.0
    return torch.from_numpy(mask)


def cartesian_masks(shape, acceleration: float, acs_lines: int = 24, seeds=(0,)) -> torch.Tensor:
    """Stack of :func:`cartesian_mask`, one per seed: (S, H, W) float32."""
    seeds = list(seeds)
    if not seeds:
        raise ConfigError("cartesian_masks needs at least one seed")
    return torch.stack([cartesian_mask(shape, acceleration, acs_lines, s) for s in seeds])


def load_mask_file(path, shape=None) -> np.ndarray:
    """Masks of a ``.npy`` file, (H, W) or (K, H, W), as a (K, H, W) float32 0/1 array.

    Every mask must be binary (weighted masks are not supported), finite and sample something; with ``shape``
    = (H, W) the grid must match. :class:`DataError` naming the file (and the mask index) otherwise.
    """
    path = Path(path)
    arr = load_npy(path, "mask", missing="mask file not found")
    arr = arr[None] if arr.ndim == 2 else arr
    if arr.ndim != 3 or min(arr.shape, default=0) < 1:
        raise DataError(where(path, f"masks must be (H, W) or (K, H, W), got shape {arr.shape}"))
    if shape is not None and tuple(arr.shape[-2:]) != tuple(shape):
        raise DataError(where(path, f"mask shape {arr.shape} does not match the k-space grid {tuple(shape)}"))
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataError(where(path, f"masks must be numeric 0/1, got dtype {arr.dtype}"))
    for k, m in enumerate(arr):
        check_mask(m, path if len(arr) == 1 else f"{path}[{k}]")
    return arr.astype(np.float32)


def acs_lines_for(width: int, acs_lines: int | None = None, acs_grid: int | None = None) -> int:
    """Fully sampled centre lines on a grid ``width`` wide (the square's side for a 2-D mask): the one ACS rule.

    ``acs_lines`` unset: the paper's 24 lines at 384 scaled to ``width`` (at least 1; 8 at 128, 16 at 256).
    ``acs_grid`` set: ``acs_lines`` counts lines of a grid that wide, scaled to ``width`` (a config written for
    384 x 384 data then also runs on 128 x 128). Otherwise ``acs_lines`` is absolute.
    """
    if acs_lines is None:
        return max(1, int(round(PAPER_ACS_LINES * width / PAPER_GRID)))
    if acs_grid is None:
        return acs_lines  # as given: cartesian_mask refuses a non-integer count
    return int(round(acs_lines * width / acs_grid))


def default_acs_lines(width: int) -> int:
    """:func:`acs_lines_for` with nothing configured: 24 lines at 384 scaled to ``width``."""
    return acs_lines_for(width)



def _generator_size(img_size) -> tuple:
    """deepinv's ``img_size`` for a mask generator, ``(H, W)``, ``(C, H, W)`` or ``(C, T, H, W)``; an int ``N``
    is ``(N, N)``."""
    if np.isscalar(img_size):
        return (int(img_size),) * 2
    size = tuple(int(n) for n in img_size)
    if not 2 <= len(size) <= 4 or min(size) < 1:
        raise ConfigError(f"mask generator img_size must be N, (H, W), (C, H, W) or (C, T, H, W), got {img_size!r}")
    return size


class SeededMaskGenerator(BaseMaskGenerator):
    """A deepinv :class:`~deepinv.physics.generator.BaseMaskGenerator` whose masks are one of our seeded mask
    functions: ``step(batch_size, seed, img_size)`` (deepinv's) returns ``{"mask": (B, C, H, W)}`` (``(C, H, W)``
    for ``batch_size=0``, ``(B, C, T, H, W)`` with a time axis), slice b's mask being ``mask_fn(shape,
    acceleration, n_center, s_b)`` with ``s_b`` drawn from the generator's ``rng`` (reseeded by ``seed``), the
    same over channels and time. ``n_center`` is the ACS width on the current grid (deepinv's
    ``MRISliceTransform`` reads it for ESPIRiT); ``acs_lines`` None: the paper's 24 at W = 384 scaled to W, and
    ``center_fraction`` (deepinv's way to give it) is taken as ``round(center_fraction * W)`` lines."""

    def __init__(self, img_size, acceleration: float = 4.0, acs_lines: int | None = None,
                 center_fraction: float | None = None, rng=None, device="cpu"):
        if acs_lines is not None and center_fraction is not None:
            raise ConfigError(f"{type(self).__name__}: give acs_lines or center_fraction, not both")
        self._acs_lines, self._center_fraction = acs_lines, center_fraction
        super().__init__(_generator_size(img_size), acceleration=float(acceleration),
                         center_fraction=center_fraction, rng=rng, device=device)
        self.shape, self.acceleration = (self.H, self.W), float(acceleration)

    @property
    def acs_lines(self) -> int:
        return self.n_center

    def calculate_lines(self, W: int):
        """``n_center`` (ACS lines) and ``n_lines`` (the others) on a grid ``W`` wide, checked."""
        fraction = self._center_fraction
        self.n_center = int(round(fraction * W)) if fraction is not None else int(acs_lines_for(W, self._acs_lines))
        self.check(W)
        self.n_lines = n_lines(W, self.acc) - self.n_center

    def check(self, W: int) -> None:
        _check(W, self.acc, self.n_center)

    def mask_fn(self, shape, seed: int) -> torch.Tensor:
        raise NotImplementedError

    def sample_mask(self, mask: torch.Tensor) -> torch.Tensor:
        B, H, W = mask.shape[0], mask.shape[-2], mask.shape[-1]
        seeds = torch.randint(0, 2**31 - 1, (B,), generator=self.rng, device=self.rng.device)
        for b, s in enumerate(seeds.tolist()):
            mask[b] = self.mask_fn((H, W), int(s)).to(mask)
        return mask

    def step(self, batch_size: int = 1, seed: int | None = None, img_size: tuple | None = None, **kwargs) -> dict:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 0:
            raise ConfigError(f"{type(self).__name__}.step: batch_size must be an integer >= 0, got {batch_size!r}")
        out = super().step(batch_size=int(batch_size), seed=seed,
                           img_size=None if img_size is None else tuple(int(n) for n in img_size)[-2:], **kwargs)
        self.calculate_lines(self.W)  # n_center back to the generator's own grid after an img_size= step
        return out


class CartesianMaskGenerator(SeededMaskGenerator):
    """The paper's random 1-D Cartesian masks (:func:`cartesian_mask`) as a deepinv mask generator, for
    ``physics_generator=`` pipelines (deepinv's ``Trainer`` / ``test``), ``physics.update(**generator.step())``
    and deepinv's ``MRISliceTransform(mask_generator=...)``; see :class:`SeededMaskGenerator`.

    :param img_size: ``N``, ``(H, W)``, ``(C, H, W)`` or ``(C, T, H, W)``.
    :param float acceleration: R.
    :param int acs_lines: centre lines; ``None`` = the paper's 24 at W = 384 scaled to W.
    :param float center_fraction: deepinv's alternative to ``acs_lines``.
    """

    def get_pdf(self, W: int | None = None) -> torch.Tensor:
        """Sampling probability per column: 1 on the ACS block, uniform over the others."""
        W = self.W if W is None else int(W)
        start, acs = (W - self.n_center) // 2, self.n_center
        pdf = torch.full((W,), (n_lines(W, self.acc) - acs) / max(W - acs, 1), **self.factory_kwargs)
        pdf[start:start + acs] = 1.0
        return pdf

    def mask_fn(self, shape, seed: int) -> torch.Tensor:
        return cartesian_mask(shape, self.acc, self.n_center, seed)
