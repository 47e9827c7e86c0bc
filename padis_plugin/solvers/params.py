"""Solver-factory parameter checking shared by every built-in factory (classical, DPS, DiffPIR)."""
from __future__ import annotations

from ..errors import ConfigError


def check_params(name: str, params: dict | None, allowed) -> dict:
    """Copy of ``params`` (``None`` -> {}); unknown keys -> :class:`ConfigError` listing the ``allowed`` ones."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"solver '{name}': unknown parameter(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(sorted(allowed))}")
    return params
