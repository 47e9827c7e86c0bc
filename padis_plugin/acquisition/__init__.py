"""Acquisitions: which k-space samples a scan takes (:class:`Acquisition`), and the problem they pose.

- :mod:`.base`: the concept (``sample(shape, seed)`` -> mask, ``step`` for ``physics.update``, ``measure``);
- :mod:`.cartesian`: 1-D Cartesian lines (the paper's masks); :mod:`.poisson`: 2-D variable-density
  Poisson-disc; :mod:`.stored`: masks from a file, or the slice's own acquired mask;
- :mod:`.problem_types`: :class:`Problem` ``(y, physics, x_ref, info)``; :mod:`.problem`: ``make_problem(slice,
  acquisition, seed)``, ``slice_problem``, ``batch_problems``;
- :mod:`.registry`: generated acquisitions by kind name (``make_acquisition``).
"""
from .base import Acquisition, achieved_acceleration
from .cartesian import CartesianLines
from .poisson import PoissonDisc, poisson_mask
from .registry import KINDS, make_acquisition
from .problem import batch_problems, make_problem, slice_problem
from .problem_types import Problem, ProblemInfo
from .stored import AcquiredMask, StoredMasks

__all__ = ["KINDS", "AcquiredMask", "Acquisition", "CartesianLines", "PoissonDisc", "Problem", "ProblemInfo", "StoredMasks",
           "achieved_acceleration", "batch_problems", "make_acquisition", "make_problem", "poisson_mask",
           "slice_problem"]
