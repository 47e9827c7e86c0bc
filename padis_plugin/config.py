"""YAML configuration files loaded into typed dataclasses, with ``--set key=value`` overrides.

Generic helpers (any dataclass, used by the benchmark and by training):

* :func:`load_yaml` reads a mapping from a YAML file (``1e-4`` is a float, as in YAML 1.2);
* :func:`apply_overrides` applies ``["a.b=1", "solvers.0.params.lam=1e-3"]`` to a nested dict, each value
  parsed as YAML (so ``[4, 7]``, ``null``, ``true`` and numbers get their types);
* :func:`from_dict` builds a (nested) dataclass from a dict, checking every key and type, and raises
  :class:`~padis_plugin.errors.ConfigError` naming the file and the dotted key;
* :func:`to_dict` is the inverse (the resolved config written next to every output);
* :func:`load_config` = the three in a row.

Then the benchmark's schema, :class:`BenchConfig` (see ``configs/*.yaml`` for commented examples).
"""
from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from .errors import ConfigError, where


# ----------------------------------------------------------------------------------------------- YAML I/O
class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` / ``3E5`` as floats (PyYAML's YAML 1.1 needs a dot)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+][0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def parse_value(text: str, source=None):
    """One YAML scalar or flow collection, e.g. ``"4"`` -> 4, ``"[4, 7]"`` -> [4, 7], ``"abc"`` -> "abc"."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(where(source, f"cannot parse value {text!r} ({_first_line(exc)})")) from None


def load_yaml(path) -> dict:
    """The top-level mapping of a YAML file; ConfigError naming the file if missing, unreadable or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(where(path, "config file not found"))
    try:
        data = yaml.load(path.read_text(), Loader=_Loader)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(where(path, f"cannot read config ({exc})")) from None
    except yaml.YAMLError as exc:
        raise ConfigError(where(path, f"invalid YAML ({_first_line(exc)})")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(where(path, f"a config must be a mapping of keys, got {type(data).__name__}"))
    return data


def _first_line(exc) -> str:
    return " ".join(str(exc).split())


def apply_overrides(data: dict, overrides, source="--set") -> dict:
    """A deep copy of ``data`` with each ``"a.b.c=value"`` applied (value parsed as YAML).

    Integer path components index lists (``solvers.1.label=EDM``); missing mapping keys are created
    (unknown keys are then reported by :func:`from_dict`).
    """
    data = copy.deepcopy(data)
    for item in overrides or ():
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(where(source, f"override {item!r} is not of the form key.subkey=value"))
        node = data
        parts = key.split(".")
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            dotted = ".".join(parts[:depth + 1])
            if isinstance(node, list):
                if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
                    raise ConfigError(where(source, f"'{dotted}': index {part!r} out of range for a list "
                                                    f"of {len(node)}"))
                part = int(part)
            elif not isinstance(node, dict):
                raise ConfigError(where(source, f"'{dotted}': '{'.'.join(parts[:depth])}' is not a mapping"))
            if last:
                node[part] = parse_value(text, source)
            else:
                if isinstance(node, dict) and node.get(part) is None:
                    node[part] = {}
                node = node[part]
    return data


# ------------------------------------------------------------------------------------- dict <-> dataclass
def from_dict(cls, data, source=None, prefix: str = ""):
    """Build dataclass ``cls`` from ``data``, recursively; ConfigError ``"<source>: <dotted key>: ..."``.

    Checks: unknown keys, missing required keys, and types (``int`` accepted for ``float``, ``None`` only
    for optional fields, ``list[...]`` / ``dict[str, ...]`` / unions / nested dataclasses / ``Any``).
    A dataclass may define ``validate(self, source)`` for cross-field checks; it is called after building.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(where(source, f"'{prefix or '<top>'}' must be a mapping, got {_kind(data)}"))
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise ConfigError(where(source, f"unknown key '{_join(prefix, key)}' (known: {', '.join(fields)})"))
    kwargs = {}
    for name, f in fields.items():
        dotted = _join(prefix, name)
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], source, dotted)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(where(source, f"missing required key '{dotted}'"))
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate(source, prefix)
    return obj


def to_dict(obj) -> Any:
    """Dataclasses -> plain dicts/lists (JSON and YAML serialisable), recursively."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def load_config(cls, path, overrides=()):
    """``from_dict(cls, apply_overrides(load_yaml(path), overrides), source=path)``."""
    return from_dict(cls, apply_overrides(load_yaml(path), overrides), source=path)


def _join(prefix: str, key) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _kind(value) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"[:80]


def _convert(tp, value, source, dotted):
    """Check/convert one value against a type hint."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(where(source, f"'{dotted}' must not be null"))
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, source, dotted)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        names = " or ".join(_type_name(a) for a in args if a is not type(None))
        raise ConfigError(where(source, f"'{dotted}' must be {names}, got {_kind(value)}"))
    if value is None:
        raise ConfigError(where(source, f"'{dotted}' must not be null"))
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, source, dotted)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(where(source, f"'{dotted}' must be a list, got {_kind(value)}"))
        (arg,) = typing.get_args(tp)[:1] or (Any,)
        return [_convert(arg, v, source, f"{dotted}.{i}") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(where(source, f"'{dotted}' must be a mapping, got {_kind(value)}"))
        args = typing.get_args(tp)
        val_t = args[1] if len(args) == 2 else Any
        return {str(k): _convert(val_t, v, source, f"{dotted}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. a numeric slice id or patient id
    else:
        raise ConfigError(where(source, f"'{dotted}': unsupported field type {tp!r}"))
    raise ConfigError(where(source, f"'{dotted}' must be {_type_name(tp)}, got {_kind(value)}"))


def _type_name(tp) -> str:
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        return "a list"
    if origin is dict or tp is dict:
        return "a mapping"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


# ---------------------------------------------------------------------------------- benchmark schema
BUNDLED_DEMO = "bundled-demo"
MAX_R = 16.0


@dataclass
class DataConfig:
    """Which slices: a prepared HDF5 file, a fastMRI file/folder (prepared on the fly, cached) or
    ``bundled-demo``; then filters."""

    path: str = BUNDLED_DEMO
    contrasts: list[str] | None = None
    patients: list[str] | None = None
    ids: list[str] | None = None
    max_slices: int | None = None
    size: int = 384                      # grid N when a raw fastMRI source is prepared on the fly
    slices: str | int | list[int] = "centre"   # raw sources: "centre", "all", an index or indices per volume
    cache_dir: str | None = None         # prepared-file cache for raw sources (default ~/.cache/padis_plugin)

    def validate(self, source, prefix):
        if self.max_slices is not None and self.max_slices < 1:
            raise ConfigError(where(source, f"'{_join(prefix, 'max_slices')}' must be >= 1"))


@dataclass
class MaskConfig:
    """1-D Cartesian masks: one per (acceleration, seed); ``file`` replaces generation by a stored
    (H, W) or (K, H, W) ``.npy`` array whose K masks are addressed by the seeds (indices).

    ``acs_grid``: the grid width ``acs_lines`` refers to; on another grid width W the ACS block is scaled to
    ``round(acs_lines * W / acs_grid)`` lines (so a config written for 384 x 384 data, e.g. 20 ACS lines,
    also runs on the 128 x 128 bundled demo). ``None``: ``acs_lines`` is absolute."""

    accelerations: list[float] = field(default_factory=lambda: [7.0])
    acs_lines: int = 24
    acs_grid: int | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    file: str | None = None

    def acs_for(self, width: int) -> int:
        """ACS lines on a grid of ``width`` phase-encode lines."""
        if self.acs_grid is None:
            return self.acs_lines
        return int(round(self.acs_lines * width / self.acs_grid))

    def validate(self, source, prefix):
        if not self.accelerations:
            raise ConfigError(where(source, f"'{_join(prefix, 'accelerations')}' must not be empty"))
        for i, r in enumerate(self.accelerations):
            if not 1.0 <= r <= MAX_R:
                raise ConfigError(where(source, f"'{_join(prefix, f'accelerations.{i}')}': R={r:g} is outside "
                                                f"[1, {MAX_R:g}]"))
        if len(set(self.accelerations)) != len(self.accelerations):
            raise ConfigError(where(source, f"'{_join(prefix, 'accelerations')}' has duplicates"))
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(where(source, f"'{_join(prefix, 'seeds')}' must be a non-empty list of distinct seeds"))
        if self.acs_lines < 0:
            raise ConfigError(where(source, f"'{_join(prefix, 'acs_lines')}' must be >= 0"))
        if self.acs_grid is not None and self.acs_grid < 1:
            raise ConfigError(where(source, f"'{_join(prefix, 'acs_grid')}' must be >= 1"))


@dataclass
class SolverEntry:
    """One row of the benchmark: a registered solver name, its parameters, a display label (unique) and
    optionally the training-set size S of its prior (shown as a column)."""

    name: str
    label: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    training_size: int | None = None

    @property
    def display(self) -> str:
        return self.label or self.name


@dataclass
class UncertaintyConfig:
    """Paper Table 1: reconstruct each slice under ``seeds`` masks (a count -> seeds 0..n-1, or a list)
    and report pixel-wise standard deviation maps and their mean inside the brain (Otsu on |ref|)."""

    enabled: bool = False
    seeds: int | list[int] = 10
    solvers: list[str] | None = None      # labels; None = every solver
    crop: list[int] | None = None         # (h, w) centre crop before the brain mask, e.g. [384, 320]
    vmax: float | None = None             # heatmap colour limit (None: per-figure max)

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def validate(self, source, prefix):
        if not self.seed_list or len(set(self.seed_list)) != len(self.seed_list):
            raise ConfigError(where(source, f"'{_join(prefix, 'seeds')}' must give at least one distinct seed"))
        if self.enabled and len(self.seed_list) < 2:
            raise ConfigError(where(source, f"'{_join(prefix, 'seeds')}': a standard deviation needs >= 2 masks"))
        if self.crop is not None and len(self.crop) != 2:
            raise ConfigError(where(source, f"'{_join(prefix, 'crop')}' must be [h, w]"))


@dataclass
class ReuseSource:
    """Finished items of another results folder to take over instead of recomputing them: ``solvers`` maps a
    label of this config to the label it has there; an item is taken only when its solver entry (less the
    label), data, mask and seed settings are the same there, so it would be computed identically here."""

    dir: str
    solvers: dict[str, str] = field(default_factory=dict)


@dataclass
class OutputConfig:
    dir: str | None = None                # default results/<name>
    figures: bool = True                  # one PNG per slice and R (first mask seed)
    save_recons: bool = True              # recons/*.npy (complex64), needed by figures and uncertainty
    reuse_from: list[ReuseSource] = field(default_factory=list)


@dataclass
class BenchConfig:
    """A benchmark: solvers x slices x accelerations x mask seeds -> metrics, tables, figures."""

    name: str = "bench"
    seed: int = 0                         # global seed of every solver's torch.Generator
    device: str = "auto"                  # auto | cpu | cuda | cuda:K (auto: cuda:LOCAL_RANK if available)
    data: DataConfig = field(default_factory=DataConfig)
    masks: MaskConfig = field(default_factory=MaskConfig)
    solvers: list[SolverEntry] = field(default_factory=list)
    crop: list[int] | None = None         # metrics centre crop (h, w); None: full image (paper)
    reference: str | None = None          # label that every other solver is compared against
    pairs: list[list[str]] = field(default_factory=list)   # [[label A, label B], ...] -> A - B
    uncertainty: UncertaintyConfig = field(default_factory=UncertaintyConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def validate(self, source, prefix=""):
        if not self.solvers:
            raise ConfigError(where(source, "'solvers' must list at least one solver"))
        labels = [s.display for s in self.solvers]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ConfigError(where(source, f"'solvers': duplicate label(s) {', '.join(dup)}; give each a "
                                            "distinct 'label'"))
        known = set(labels)
        if self.reference is not None and self.reference not in known:
            raise ConfigError(where(source, f"'reference': unknown solver label '{self.reference}' "
                                            f"(labels: {', '.join(labels)})"))
        for i, pair in enumerate(self.pairs):
            if len(pair) != 2:
                raise ConfigError(where(source, f"'pairs.{i}' must be [label A, label B]"))
            for label in pair:
                if label not in known:
                    raise ConfigError(where(source, f"'pairs.{i}': unknown solver label '{label}' "
                                                    f"(labels: {', '.join(labels)})"))
        for label in self.uncertainty.solvers or ():
            if label not in known:
                raise ConfigError(where(source, f"'uncertainty.solvers': unknown solver label '{label}'"))
        if self.crop is not None and len(self.crop) != 2:
            raise ConfigError(where(source, "'crop' must be [h, w]"))

    @property
    def output_dir(self) -> Path:
        return Path(self.output.dir) if self.output.dir else Path("results") / self.name
