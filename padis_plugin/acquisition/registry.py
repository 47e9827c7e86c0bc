"""Generated acquisitions by kind name: a new acquisition is one class in this package plus its line here."""
from __future__ import annotations

from ..errors import ConfigError
from .base import Acquisition
from .cartesian import CartesianLines
from .poisson import PoissonDisc

KINDS = {cls.kind: cls for cls in (CartesianLines, PoissonDisc)}  # acquisition.kind -> generated acquisition


def make_acquisition(kind: str, acceleration: float, acs_lines: int | None = None) -> Acquisition:
    """The generated acquisition ``kind`` (``cartesian`` or ``poisson``) at R = ``acceleration``."""
    if kind not in KINDS:
        raise ConfigError(f"unknown mask kind {kind!r} (known: {', '.join(KINDS)})")
    return KINDS[kind](acceleration, acs_lines)
