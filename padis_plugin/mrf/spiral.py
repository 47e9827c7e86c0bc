"""Variable-density spiral interleaves for MRF and their analytic density compensation.

Coordinates are in radians per pixel, finufft's convention: a matrix x matrix image has its Nyquist disc at
|k| <= pi, and the Cartesian sampling step (Nyquist) is ``2 pi / matrix``. ``points[..., 0]`` is the frequency
along the image's first (row, H) axis, ``points[..., 1]`` along its second (column, W) axis.

Design (our choice; the published trajectory file ``traj_dcf.mat`` is not public). One interleaf is the time-warped
Archimedean spiral

    r(t) = kmax * t**alpha,   theta(t) = 2 pi n t,   t = m / samples,  m = 0 .. samples-1,   kmax = pi,

with alpha = ``density_power`` >= 1 and n = matrix / (2 * interleaves) turns: the turn count of the Archimedean
(alpha = 1) spiral whose ``interleaves`` rotations sample k-space exactly at Nyquist. The warp t**alpha crowds samples
and turns towards the centre: the gap between neighbouring rotated interleaves is
2 pi r'(t) / (interleaves * theta'(t)) = alpha (r / kmax)**((alpha - 1) / alpha) * (2 pi / matrix), i.e. Nyquist (or
denser) inside r <= kmax * alpha**(-alpha / (alpha - 1)) (a quarter of kmax for alpha = 2) and alpha-fold undersampled
at the edge. The gap is an upper bound: where the spiral barely winds the rotated copies are closer still.

Density compensation (analytic, the |k| dk dtheta Jacobian of the spiral): r(t) increases monotonically, so the
``interleaves`` rotated copies of sample m share the annulus between the radii at t = (m -/+ 1/2) / samples, and each
owns 1 / interleaves of it: w_m = pi (r_{m+1/2}**2 - r_{m-1/2}**2) / interleaves. It is expressed in Nyquist cells
((2 pi / matrix)**2), so that with an orthonormal NUFFT (scale 1 / matrix) the sum over all ``interleaves`` rotations
of F_r^H W F_r is the identity up to the low-pass to the disc |k| < pi (the weights sum to pi matrix**2 / 4, the disc
area in cells).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

#: The published setup (MRF-DiPh demo, spec section 5): 230 x 230, 920 samples per interleaf, 377 interleaves.
PUBLISHED = dict(matrix=230, samples=920, interleaves=377)
#: Golden angle of a full circle, 2 pi (1 - 1 / phi) (about 137.51 degrees), for ``order="golden"``.
GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))


def _check(matrix: int, samples: int, interleaves: int, density_power: float) -> None:
    if int(matrix) < 2:
        raise ConfigError(f"spiral: matrix must be an integer >= 2, got {matrix}")
    if int(samples) < 2:
        raise ConfigError(f"spiral: samples per interleaf must be >= 2, got {samples}")
    if int(interleaves) < 1:
        raise ConfigError(f"spiral: interleaves must be >= 1, got {interleaves}")
    if not (math.isfinite(density_power) and density_power >= 1.0):
        raise ConfigError(f"spiral: density_power (alpha) must be a finite number >= 1, got {density_power}")


def _radius(t: np.ndarray, alpha: float) -> np.ndarray:
    return math.pi * np.clip(t, 0.0, None) ** alpha


def spiral_interleaf(matrix: int, samples: int, interleaves: int, density_power: float = 2.0) -> np.ndarray:
    """One variable-density spiral interleaf (see the module docstring for the formula).

    :param matrix: image size (matrix x matrix) whose Nyquist disc |k| <= pi is covered.
    :param samples: readout samples per interleaf.
    :param interleaves: rotations that together make the full acquisition (sets the turn count).
    :param density_power: alpha >= 1 in r = pi t**alpha (1: Archimedean, uniform density).
    :return: (samples, 2) float64 k-space points in radians, inside the open disc |k| < pi.
    """
    _check(matrix, samples, interleaves, density_power)
    t = np.arange(samples, dtype=np.float64) / samples
    r = _radius(t, density_power)
    theta = 2.0 * math.pi * (matrix / (2.0 * interleaves)) * t
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=-1)


def spiral_dcf(matrix: int, samples: int, interleaves: int, density_power: float = 2.0) -> np.ndarray:
    """(samples,) float64 analytic density compensation of one interleaf, valid for the full set of ``interleaves``
    rotations, in Nyquist cells (module docstring): w_m = pi (r_{m+1/2}^2 - r_{m-1/2}^2) / interleaves
    / (2 pi / matrix)^2."""
    _check(matrix, samples, interleaves, density_power)
    edges = _radius((np.arange(samples + 1, dtype=np.float64) - 0.5) / samples, density_power)
    area = math.pi * np.diff(edges ** 2) / interleaves
    return area / (2.0 * math.pi / matrix) ** 2


def rotate(points: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """(len(angles), samples, 2): ``points`` (samples, 2) rotated by each angle (radians, counter-clockwise in the
    (k0, k1) plane)."""
    c, s = np.cos(angles)[:, None], np.sin(angles)[:, None]
    k0, k1 = points[None, :, 0], points[None, :, 1]
    return np.stack([c * k0 - s * k1, s * k0 + c * k1], axis=-1)


@dataclass(frozen=True)
class MRFTrajectory:
    """One spiral interleaf per MRF frame.

    :ivar points: (frames, samples, 2) float32 k-space points in radians (finufft convention, |k| < pi); frame t is
        the base interleaf rotated by ``angles[t]``.
    :ivar dcf: (samples,) float32 density compensation of one interleaf (in Nyquist cells), reused for every frame;
        computed for the full set of ``interleaves`` rotations (:func:`spiral_dcf`).
    :ivar angles: (frames,) float64 rotation of each frame, radians.
    :ivar matrix: image size the trajectory is designed for (matrix x matrix).
    :ivar interleaves: rotations in one full cycle.
    :ivar density_power: alpha of the spiral.
    :ivar order: ``"sequential"`` (frame t -> rotation (t mod interleaves) * 2 pi / interleaves) or ``"golden"``.
    """

    points: np.ndarray
    dcf: np.ndarray
    angles: np.ndarray
    matrix: int
    interleaves: int
    density_power: float
    order: str

    @property
    def frames(self) -> int:
        return int(self.points.shape[0])

    @property
    def samples(self) -> int:
        return int(self.points.shape[1])


def build_trajectory(matrix: int = 128, frames: int = 200, samples: int = 512, interleaves: int = 200,
                     density_power: float = 2.0, order: str = "sequential") -> MRFTrajectory:
    """The MRF spiral trajectory: one interleaf per frame.

    Defaults are the CPU setting (128 x 128, 200 frames x 512 samples, 4 samples per pixel of the matrix as in the
    published 920 for 230); ``interleaves=200`` so that the 200 frames visit every rotation once. The published setup
    is ``build_trajectory(**PUBLISHED, frames=200)``: with successive rotations its 200 frames cover 200 of the 377
    rotations (about 191 degrees).

    :param order: ``"sequential"``: frame t is rotated by (t mod interleaves) * 2 pi / interleaves (the published
        cycling); ``"golden"``: by t * 2 pi (1 - 1/phi) (about 137.5 degrees per frame), any number of frames.
    """
    if int(frames) < 1:
        raise ConfigError(f"spiral: frames must be >= 1, got {frames}")
    if order not in ("sequential", "golden"):
        raise ConfigError(f"spiral: order must be 'sequential' or 'golden', got {order!r}")
    base = spiral_interleaf(matrix, samples, interleaves, density_power)
    t = np.arange(frames, dtype=np.float64)
    angles = (t % interleaves) * (2.0 * math.pi / interleaves) if order == "sequential" else t * GOLDEN_ANGLE
    angles = np.mod(angles, 2.0 * math.pi)
    points = rotate(base, angles).astype(np.float32)
    dcf = spiral_dcf(matrix, samples, interleaves, density_power).astype(np.float32)
    return MRFTrajectory(points=points, dcf=dcf, angles=angles, matrix=int(matrix), interleaves=int(interleaves),
                         density_power=float(density_power), order=order)
