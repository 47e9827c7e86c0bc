"""Solver registry: names -> factories ``factory(params, device) -> Reconstructor``.

A factory may declare a parameters dataclass (``factory.params``, see :mod:`padis_plugin.solvers.params`):
:func:`build_solver` then checks ``params`` against it (every problem at once, named by dotted path under
``prefix`` in a config) and hands the factory the parsed dataclass. A factory without one (e.g. a third-party
plugin) gets ``params`` as a plain dict and checks them itself.

The entry-point group ``padis_plugin.solvers`` is the single source of named solvers, built-ins included
(declared in setup.cfg), so a third-party package adds a solver by declaring an entry point. Entry points
are loaded lazily: one whose module fails to import does not hide the others, and raises a
:class:`ConfigError` naming the import problem only when that solver is requested.
:func:`register_solver` adds factories in-process (scripts, notebooks, tests); such a name shadows an
entry point of the same name.
"""
from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from importlib import metadata
from typing import Callable

from ..errors import ConfigError, PadisError
from .params import check_fits_grid, declared_params, describe_params, filled_in, parse_params

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


def available_text() -> str:
    """The registered names for an "unknown solver" message, or why there are none: the built-in solvers are
    entry points of the installed distribution, so a source tree put on ``PYTHONPATH`` without installing has
    no solvers at all."""
    names = available_solvers()
    if names:
        return "available: " + ", ".join(names)
    return ("no solver is registered: the built-in solvers are entry points of the installed padis-plugin "
            "distribution; install it (pip install -e .) instead of putting the source tree on PYTHONPATH")


def get_factory(name: str) -> Callable:
    """The factory registered or declared as ``name``; :class:`ConfigError` if unknown or not importable."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    eps = _entry_points()
    if name not in eps:
        raise ConfigError(f"unknown solver '{name}'; {available_text()}")
    try:
        return eps[name].load()
    except Exception as exc:  # a broken plugin must name itself, not crash the caller with a bare traceback
        raise ConfigError(f"solver '{name}' ({eps[name].value}) cannot be loaded: "
                          f"{type(exc).__name__}: {exc}") from exc


def solver_task(name: str) -> str:
    """The benchmark task a registered solver solves: ``"slice"`` (an image from k-space; the default) or what its
    parameters class declares as ``TASK`` (e.g. ``"mrf"``: quantitative maps from MR-fingerprinting data)."""
    return getattr(declared_params(get_factory(name)), "TASK", "slice")


def build_solver(name: str, params: dict | None = None, device="cpu", source=None, prefix: str | None = None,
                 grid: int | None = None):
    """Build the solver ``name`` with ``params`` (a mapping or ``None``) on ``device``. Unknown keys, wrong
    types and disallowed values of a declared dataclass raise one :class:`~padis_plugin.errors.ParamsError`
    naming ``source`` and each key under ``prefix`` (e.g. ``solvers.2.params``). ``grid``: the data's N
    (N x N images), for a solver whose prior defaults to the one trained on that grid; a prior trained on
    another grid warns once."""
    if not isinstance(name, str):
        raise ConfigError(f"solver name must be a string, got {type(name).__name__} {name!r}")
    if params is not None and not isinstance(params, Mapping):
        raise ConfigError(f"solver '{name}': params must be a mapping of parameter names to values, "
                          f"got {type(params).__name__}")
    factory = get_factory(name)
    declared = declared_params(factory)
    params = filled_in(factory, params, grid)
    params = parse_params(declared, params, name, source, prefix) if declared else dict(params or {})
    if grid is not None and declared:
        check_fits_grid(params, int(grid), name, source, prefix)
        warn_other_grid(getattr(params, "checkpoint", None), grid)
    return factory(params, device)


def resolved_params(name: str, params: dict | None = None, grid: int | None = None) -> dict:
    """Every parameter ``name`` runs with for ``params`` (its declared dataclass's values, defaults and tuned
    settings included; the params as given for a factory that declares none), keyed as a config writes them."""
    factory = get_factory(name)
    declared = declared_params(factory)
    if not declared:
        return dict(params or {})
    p = parse_params(declared, filled_in(factory, params, grid), name)
    return {f.metadata.get("key", f.name): getattr(p, f.name) for f in dataclasses.fields(p) if f.init}


def describe_solver(name: str) -> list[str]:
    """Lines describing the parameters of ``name``: ``key: type = default`` each, or why there are none."""
    try:
        factory = get_factory(name)
    except ConfigError as exc:
        return [str(exc)]
    declared = declared_params(factory)
    if declared is None:
        return ["(parameters not declared: passed to the factory unchecked)"]
    alias_of = getattr(factory, "alias_of", None)
    if alias_of:
        note = [f"(earlier name of '{alias_of}' with its earlier defaults, kept for the configs written for it)"]
    else:
        from .settings import TUNED

        algorithm = getattr(getattr(factory, "settings", None), "algorithm", None)
        tuned = [f"{family}: " + ", ".join(f"{k}={v}" for k, v in by[algorithm].items())
                 for family, by in TUNED.items() if algorithm in by]
        note = [f"(tuned over the defaults below, by the checkpoint's family: {'; '.join(tuned)})"] if tuned else []
    return note + (describe_params(declared) or ["(no parameters)"])


_WARNED: set = set()


def warn_other_grid(checkpoint, grid: int) -> None:
    """Warn once per (checkpoint, grid) when a prior trained on an N x N grid (its JSON's ``data.grid``) is used
    on another: its features are sized for its own pixel scale (a 128 prior on 256 data sees half-size anatomy)."""
    if not isinstance(checkpoint, str) or (checkpoint, int(grid)) in _WARNED:
        return
    from ..checkpoints import read_checkpoint_config
    from ..prior.denoiser import resolve_checkpoint

    try:
        trained = (read_checkpoint_config(resolve_checkpoint(checkpoint)).get("data") or {}).get("grid")
    except PadisError:
        return  # the build itself reports a missing or damaged checkpoint
    if isinstance(trained, int) and trained != int(grid):
        _WARNED.add((checkpoint, int(grid)))
        warnings.warn(f"prior {checkpoint!r} was trained on {trained} x {trained} images and runs here on "
                      f"{grid} x {grid}: name a prior trained for this grid (or leave checkpoint out)", stacklevel=3)

