"""Solver registry: names -> factories ``factory(params: dict, device) -> Reconstructor``.

The entry-point group ``padis_plugin.solvers`` is the single source of named solvers, built-ins included
(declared in setup.cfg), so a third-party package adds a solver by declaring an entry point. Entry points
are loaded lazily: one whose module fails to import does not hide the others, and raises a
:class:`ConfigError` naming the import problem only when that solver is requested.
:func:`register_solver` adds factories in-process (scripts, notebooks, tests); such a name shadows an
entry point of the same name.
"""
from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Callable

from .errors import ConfigError

GROUP = "padis_plugin.solvers"
_REGISTERED: dict[str, Callable] = {}


def register_solver(name: str):
    """Decorator registering ``factory(params: dict, device) -> solver`` under ``name`` in this process."""
    def decorate(factory: Callable) -> Callable:
        _REGISTERED[name] = factory
        return factory
    return decorate


def _entry_points() -> dict:
    return {ep.name: ep for ep in metadata.entry_points(group=GROUP)}


def available_solvers() -> list[str]:
    """Sorted names of all solvers: entry points of ``padis_plugin.solvers`` and in-process registrations."""
    return sorted(set(_entry_points()) | set(_REGISTERED))


def get_factory(name: str) -> Callable:
    """The factory registered or declared as ``name``; :class:`ConfigError` if unknown or not importable."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    eps = _entry_points()
    if name not in eps:
        raise ConfigError(f"unknown solver '{name}'; available: {', '.join(available_solvers())}")
    try:
        return eps[name].load()
    except Exception as exc:  # a broken plugin must name itself, not crash the caller with a bare traceback
        raise ConfigError(f"solver '{name}' ({eps[name].value}) cannot be loaded: "
                          f"{type(exc).__name__}: {exc}") from exc


def build_solver(name: str, params: dict | None = None, device="cpu"):
    """Build the solver ``name`` with ``params`` (a mapping or ``None``; unknown keys -> :class:`ConfigError`)
    on ``device``."""
    if not isinstance(name, str):
        raise ConfigError(f"solver name must be a string, got {type(name).__name__} {name!r}")
    if params is not None and not isinstance(params, Mapping):
        raise ConfigError(f"solver '{name}': params must be a mapping of parameter names to values, "
                          f"got {type(params).__name__}")
    return get_factory(name)(dict(params or {}), device)
