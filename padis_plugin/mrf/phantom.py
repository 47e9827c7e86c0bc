"""Analytic brain-like phantom of quantitative maps (T1, T2, PD) for tests and demos.

Ellipses on [-1, 1]^2: a scalp ring of "other" (fat-like) tissue, a grey-matter brain, a white-matter core, two CSF
ventricles, and a few small spots (deep grey matter, CSF, fat) placed by ``seed``. Labels are drawn on a grid
:data:`SUPERSAMPLE` times finer and averaged, so edge voxels carry partial-volume fractions, which
:func:`.maps.maps_from_fractions` turns into T1 / T2 (mixed rates) and PD like the maps of real slices.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .maps import QuantitativeMaps, maps_from_fractions
from .segmentation import TISSUE_NAMES

SUPERSAMPLE = 4
# (tissue, centre x, centre y, semi-axis x, semi-axis y, rotation in degrees), painted in this order
_ELLIPSES = (
    ("other", 0.0, 0.0, 0.92, 0.78, 0),     # scalp (its inside is painted over next)
    ("gm", 0.0, 0.0, 0.84, 0.70, 0),        # cortex
    ("wm", 0.0, 0.0, 0.70, 0.56, 0),
    ("csf", -0.16, -0.05, 0.07, 0.24, 15),  # lateral ventricles
    ("csf", 0.16, -0.05, 0.07, 0.24, -15),
)
_SPOTS = ("gm", "gm", "csf", "other")         # small discs inside the white matter, radius 0.06


def _ellipse(x, y, cx, cy, ax, ay, deg):
    t = np.deg2rad(deg)
    u, v = (x - cx) * np.cos(t) + (y - cy) * np.sin(t), -(x - cx) * np.sin(t) + (y - cy) * np.cos(t)
    return (u / ax) ** 2 + (v / ay) ** 2 <= 1


def phantom_labels(size: int, seed: int = 0, supersample: int = SUPERSAMPLE) -> np.ndarray:
    """(size * supersample, size * supersample) int labels: 0 background, k + 1 for :data:`TISSUE_NAMES`[k]."""
    n = size * supersample
    y, x = np.meshgrid((np.arange(n) + 0.5) / n * 2 - 1, (np.arange(n) + 0.5) / n * 2 - 1, indexing="ij")
    lab = np.zeros((n, n), dtype=np.int64)
    for name, *geom in _ELLIPSES:
        lab[_ellipse(x, y, *geom)] = TISSUE_NAMES.index(name) + 1
    rng = np.random.default_rng(seed)
    for name in _SPOTS:  # centres in the white matter, clear of the ventricles (|x| > 0.3) and the cortex
        cx, cy = rng.choice([-1, 1]) * rng.uniform(0.32, 0.5), rng.uniform(-0.3, 0.3)
        lab[_ellipse(x, y, cx, cy, 0.06, 0.06, 0)] = TISSUE_NAMES.index(name) + 1
    return lab


def mrf_phantom(size: int = 32, seed: int = 0, vary: bool = True) -> QuantitativeMaps:
    """Phantom maps at ``size`` x ``size``: T1, T2 (s) float32, PD complex64, mask, tissue labels.

    ``seed`` places the spots and, with ``vary`` (default), draws the tissue factors, the smooth T1 / T2 variation
    and the PD phase as for real slices; ``vary=False`` gives the literature values of :data:`.maps.TISSUES`
    exactly in pure voxels and zero phase.
    """
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 8:
        raise ConfigError(f"phantom size must be an integer >= 8, got {size!r}")
    lab = phantom_labels(int(size), seed)
    s = SUPERSAMPLE
    onehot = np.stack([lab == k + 1 for k in range(len(TISSUE_NAMES))]).astype(np.float64)
    fractions = onehot.reshape(len(TISSUE_NAMES), size, s, size, s).mean(axis=(2, 4))
    return maps_from_fractions(fractions, np.random.default_rng([seed, 1]), vary=vary)
