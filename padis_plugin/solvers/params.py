"""Solver-factory parameter checking shared by every built-in factory (classical, DPS, DDS, DAPS, DiffPIR)."""
from __future__ import annotations

import math
import os

from ..errors import ConfigError


def check_params(name: str, params: dict | None, allowed) -> dict:
    """Copy of ``params`` (``None`` -> {}); unknown keys -> :class:`ConfigError` listing the ``allowed`` ones."""
    if params is not None and not isinstance(params, dict):
        raise ConfigError(f"solver '{name}': params must be a mapping, got {type(params).__name__}")
    params = dict(params or {})
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"solver '{name}': unknown parameter(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(sorted(allowed))}")
    return params


def _cast(name, key, value, kind):
    """``value`` as ``kind``: int, float (finite), bool, str, or a tuple of allowed values."""
    if isinstance(kind, tuple):
        if value not in kind:
            raise ConfigError(f"solver '{name}': {key} must be one of {list(kind)}, got {value!r}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"solver '{name}': {key} must be true or false, got {value!r}")
        return value
    if kind is str:  # names and paths
        if not isinstance(value, (str, os.PathLike)):
            raise ConfigError(f"solver '{name}': {key} must be a string, got {value!r}")
        return str(value)
    try:
        if isinstance(value, bool) or isinstance(value, (list, dict)):
            raise TypeError
        out = kind(value)
        if kind is int and out != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"solver '{name}': {key} must be {'an integer' if kind is int else 'a number'}, "
                          f"got {value!r}") from None
    if kind is float and not math.isfinite(out):
        raise ConfigError(f"solver '{name}': {key} must be finite, got {value!r}")
    return out


def typed_params(name: str, params: dict | None, spec: dict) -> dict:
    """Check ``params`` against ``spec`` (key -> int, float, bool, str, a tuple of allowed values, or a type
    followed by allowed strings such as ``(float, "auto")``); returns the keys given, cast. A ``None`` value
    means "the default" and is dropped."""
    p = check_params(name, params, spec)
    out = {}
    for key, value in p.items():
        if value is None:
            continue
        kind = spec[key]
        if isinstance(kind, tuple) and kind and isinstance(kind[0], type):  # (type, *allowed strings)
            out[key] = value if value in kind[1:] else _cast(name, key, value, kind[0])
        else:
            out[key] = _cast(name, key, value, kind)
    return out
