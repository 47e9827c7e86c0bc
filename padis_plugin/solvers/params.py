"""Typed solver parameters: a factory declares a dataclass (names, types, defaults, allowed values) and gets
its ``params`` checked against it, every problem reported at once.

A field's type is ``int``, ``float`` (finite), ``bool``, ``str``, a ``Literal`` of allowed values, or a union of
those (``float | Literal["auto"]``); ``X | None`` with a ``None`` default means "decided elsewhere" (e.g. the
checkpoint's own patch size). A ``None`` value in a config means the default. ``field(metadata=...)`` may give
``key`` (the config name, where it is a Python keyword: ``lambda``) and ``default`` (what a ``None`` default
means, for listings). A dataclass may define ``check(self, bad)`` for range and cross-field checks
(``bad.add(key, "must be >= 1, got 0")``).

Problems name the key by its dotted path in a config (``cfg.yaml: 'solvers.2.params.zeta' must be a number``,
as :mod:`padis_plugin.config` does for every other section), or, called without one, as
``solver 'padis-dps': zeta must be a number``.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
import math
import os
import types
import typing
from typing import Literal, Union

from ..config import Problems, join_key, config_error
from ..errors import ConfigError, ParamsError, where

def takes_params(cls, solver: str, settings=None):
    """Decorator: the factory ``factory(p: cls, device)`` is called with ``params`` parsed into ``cls``
    (:func:`parse_params`; a ``cls`` instance passes as it is) and declares ``cls`` as ``factory.params``.

    ``settings(params, grid) -> params`` (:mod:`padis_plugin.solvers.settings`) fills in what a config leaves
    out before parsing (the tuned settings of the prior's family, the prior for the data's ``grid``); it is
    ``factory.settings``, so the registry applies it with the grid it knows."""
    def declare(factory):
        @functools.wraps(factory)
        def checked(params=None, device="cpu", grid=None):
            if settings is not None and not isinstance(params, cls):
                params = settings(params, grid)
            return factory(parse_params(cls, params, solver), device)
        checked.params, checked.settings = cls, settings
        return checked
    return declare


def filled_in(factory, params, grid=None):
    """``params`` as the factory's settings hook completes them (unchanged without one, or for an instance of
    its parameters class)."""
    settings = getattr(factory, "settings", None)
    if settings is None or isinstance(params, getattr(factory, "params", ())):
        return params
    return settings(params, grid)


def declared_params(factory):
    """The parameters dataclass a factory declares (``factory.params``), or ``None``: a factory without one
    (e.g. a third-party plugin) gets its params as a plain dict and checks them itself."""
    cls = getattr(factory, "params", None)
    return cls if isinstance(cls, type) and dataclasses.is_dataclass(cls) else None


def config_key(f: dataclasses.Field) -> str:
    """The name of a field in configs (``lambda`` for the field ``lambda_``)."""
    return f.metadata.get("key", f.name)


class _ParamProblems(Problems):
    """Problems of one solver's params: the key by dotted path under ``prefix`` (a config), or by bare name
    after ``solver '<name>'`` (a direct call, ``prefix=None``)."""

    def __init__(self, solver, source, prefix):
        super().__init__(source if prefix is not None else f"solver '{solver}'", prefix or "")
        self.quoted = prefix is not None

    def add(self, key, problem: str):
        label = f"'{join_key(self.prefix, key)}'" if self.quoted else str(key)
        self.append(where(self.source, f"{label}{'' if problem.startswith(':') else ' '}{problem}"))

    def raise_any(self):
        if self:
            raise config_error(self, ParamsError)


def parse_params(cls, params, solver: str, source=None, prefix: str | None = None):
    """``params`` (a mapping, ``None`` or a ``cls`` instance) as a ``cls`` instance. Unknown keys (the allowed
    ones listed), wrong types, disallowed values and ``cls.check`` problems raise one :class:`ParamsError`."""
    if isinstance(params, cls):
        return params
    if params is not None and not isinstance(params, Mapping):
        raise ConfigError(where(source, f"solver '{solver}': params must be a mapping of parameter names to "
                                        f"values, got {type(params).__name__}"))
    params = dict(params or {})
    bad = _ParamProblems(solver, source, prefix)
    fields = {config_key(f): f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    rejected = getattr(cls, "NOT_HERE", {})
    for key in params:
        if key not in fields:
            bad.add(key, rejected.get(key) or f": unknown parameter; allowed: {', '.join(sorted(fields))}")
    kwargs = {}
    for key, f in fields.items():
        if params.get(key) is None:  # absent or null: the default
            continue
        try:
            kwargs[f.name] = _cast(params[key], hints[f.name])
        except ValueError as exc:
            bad.add(key, str(exc))
    bad.raise_any()
    p = cls(**kwargs)
    _check_limits(p, bad)
    bad.raise_any()
    if hasattr(p, "check"):
        p.check(bad)
        bad.raise_any()
    return p


#: Stated limits of the parameters every solver shares by name (inclusive; a bound of None is open), far
#: outside any useful setting: they stop a typo from allocating memory or time without bound (``steps: 1e10``)
#: or overflowing the schedule (``sigma_max: 1e300``, ``rho: 1e-300``) before anything runs.
LIMITS: dict[str, tuple[float, float]] = {
    "steps": (1, 10_000), "inner": (1, 1_000), "iterations": (1, 100_000), "ode_steps": (1, 1_000),
    "cg_iters": (0, 10_000), "samples": (1, 1_024), "sample_batch": (1, 1_024),
    "sigma_max": (1e-6, 1e4), "sigma_min": (1e-8, 1e4), "rho": (1e-3, 1e3),
    "gamma": (0.0, 1e10), "eta": (0.0, 1.0), "tau_scale": (1e-6, 1e6), "zeta": (0.0, 1e6),
    "snr": (0.0, 1e3), "mse": (0.0, 1e6), "corrector_mse": (0.0, 1e6), "stepsize": (1e-12, 1e12),
    "patch_size": (1, 4_096), "pad": (0, 4_096), "max_batch": (1, 1_000_000), "band_width": (1, 4_096),
    "canvas_pad": (0, 4_096), "level": (1, 12), "lambda": (0.0, 1e6), "lam": (0.0, 1e6),
}


def _check_limits(p, bad) -> None:
    """Every field of ``p`` named in :data:`LIMITS` (and set) within its limits."""
    for f in dataclasses.fields(p):
        key = config_key(f)
        value = getattr(p, f.name)
        if key not in LIMITS or isinstance(value, (bool, str)) or not isinstance(value, (int, float)):
            continue
        low, high = LIMITS[key]
        if not low <= value <= high:
            bad.add(key, f"must be in [{low:g}, {high:g}], got {value:g}")


def check_fits_grid(p, grid: int, solver: str, source=None, prefix: str | None = None) -> None:
    """:class:`ParamsError` naming the key when a patch setting of ``p`` exceeds twice the data's ``grid`` x
    ``grid`` image (:func:`~padis_plugin.prior.patches.tiling_limit`; checked before any allocation, and the
    denoiser checks its checkpoint's own settings when it runs)."""
    from ..prior.patches import tiling_limit

    bad = _ParamProblems(solver, source, prefix)
    limit = tiling_limit(grid)
    for key in ("patch_size", "pad", "band_width", "canvas_pad"):
        value = getattr(p, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > limit:
            bad.add(key, f"= {value} exceeds twice the {grid} x {grid} image (at most {limit})")
    bad.raise_any()


def values(p, cls=None) -> dict:
    """The fields of ``p`` (those of the dataclass ``cls`` only, if given) as keyword arguments."""
    return {f.name: getattr(p, f.name) for f in dataclasses.fields(cls or p) if f.init}


# ------------------------------------------------------------------------------------------------ values
def _members(tp) -> list:
    """The non-None members of a union (``[tp]`` for any other type)."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        return [a for a in typing.get_args(tp) if a is not type(None)]
    return [tp]


def _cast(value, tp):
    """``value`` as the type hint ``tp``; ValueError with the problem ("must be ..., got ...") otherwise."""
    members = _members(tp)
    allowed = [v for m in members if typing.get_origin(m) is Literal for v in typing.get_args(m)]
    if value in allowed and not isinstance(value, bool):
        return value
    kinds = [m for m in members if typing.get_origin(m) is not Literal]
    if not kinds:
        raise ValueError(f"must be one of {allowed}, got {value!r}")
    try:
        return _cast_plain(value, kinds[0])
    except ValueError as exc:
        if not allowed:
            raise
        what, got = str(exc).removeprefix("must be ").split(", got ", 1)
        raise ValueError(f"must be {what} or one of {allowed}, got {got}") from None


def _cast_plain(value, kind):
    """``value`` as int (integral numbers too), float (finite), bool, or str (paths too)."""
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {value!r}")
        return value
    if kind is str:
        if not isinstance(value, (str, os.PathLike)):
            raise ValueError(f"must be a string, got {value!r}")
        return str(value)
    what = "an integer" if kind is int else "a number"
    try:
        if isinstance(value, (bool, list, dict)):
            raise TypeError
        out = kind(value)
        if kind is int and out != float(value):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"must be {what}, got {value!r}") from None
    if kind is float and not math.isfinite(out):
        raise ValueError(f"must be finite, got {value!r}")
    return out


# ---------------------------------------------------------------------------------------------- listing
def type_name(tp) -> str:
    """``int``, ``float``, ``channel | complex``, ``float | auto``: the values a field takes."""
    names = []
    for m in _members(tp):
        names += [str(v) for v in typing.get_args(m)] if typing.get_origin(m) is Literal else [m.__name__]
    return " | ".join(names)


def describe_params(cls) -> list[str]:
    """One line per parameter, ``key: type = default``, in declaration order."""
    hints = typing.get_type_hints(cls)
    lines = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default = f.default
        shown = f.metadata.get("default") or ("null" if default is None else
                                              str(default).lower() if isinstance(default, bool) else str(default))
        lines.append(f"{config_key(f)}: {type_name(hints[f.name])} = {shown}")
    return lines
