"""YAML configuration files loaded into typed dataclasses, with ``--set key=value`` overrides.

Generic helpers (any dataclass, used by the benchmark and by training):

* :func:`load_yaml` reads a mapping from a YAML file (``1e-4`` is a float, as in YAML 1.2);
* :func:`apply_overrides` applies ``["a.b=1", "solvers.0.params.lam=1e-3"]`` to a nested dict, each value
  parsed as YAML (so ``[4, 7]``, ``null``, ``true`` and numbers get their types);
* :func:`from_dict` builds a (nested) dataclass from a dict, checking every key and type, and raises
  :class:`~padis_plugin.errors.ConfigError` naming the file and the dotted key;
* :func:`to_dict` is the inverse (the resolved config written next to every output);
* :func:`load_config` = the three in a row;
* :func:`resolve_config` turns a ``--config`` argument (a path, or the name of a shipped config) into a path.

Every problem of a config is reported at once: one :class:`ConfigError` lists them all (``.problems``).

The schemas live beside what they configure: the benchmark's in :mod:`.bench_config` (its names are still
importable from here), training's in :mod:`.train.config`.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Union

import yaml

from .errors import ConfigError, where


# ----------------------------------------------------------------------------------------------- YAML I/O
MAX_YAML_DEPTH = 64  # nesting of mappings and lists; the deepest config key is 4 levels down


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` / ``3E5`` as floats (PyYAML's YAML 1.1 needs a dot), and refuses
    what a config never needs but an input can abuse: aliases (``*a``: a 400-byte file of nested aliases expands
    to gigabytes), nesting deeper than :data:`MAX_YAML_DEPTH` (a RecursionError otherwise) and a key given twice
    (the later one silently won)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"YAML aliases (*{event.anchor}) are not accepted in "
                                                          "configs; write the value out", event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice",
                                                        key_node.start_mark)
            if isinstance(key, (str, int, float, bool)):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


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
    if data is None:  # an empty file (or only comments) would silently mean "every default"
        raise ConfigError(where(path, "config file is empty; a config must be a mapping of keys"))
    if not isinstance(data, dict):
        raise ConfigError(where(path, f"a config must be a mapping of keys, got {type(data).__name__}"))
    return data


def _first_line(exc) -> str:
    return " ".join(str(exc).split())


# ------------------------------------------------------------------------------------- shipped configs
SUFFIX = ".yaml"


def configs_dir() -> Path | None:
    """The folder of shipped configs: ``padis_plugin/configs`` in an installed wheel (setup.cfg maps the
    repository's ``configs/`` there), else the repository's ``configs/`` (checkout or editable install)."""
    package = Path(__file__).resolve().parent
    if (package / "configs").is_dir():
        return package / "configs"
    repo = package.parent
    if (repo / "configs").is_dir() and (repo / "setup.cfg").is_file():  # not some other site-packages/configs
        return repo / "configs"
    return None


def shipped_configs(kind: str | None = None) -> dict[str, Path]:
    """Name (file stem) -> path of the shipped configs, sorted; ``kind`` keeps those of :func:`config_kind`."""
    folder = configs_dir()
    paths = sorted(folder.glob(f"*{SUFFIX}")) if folder else []
    return {p.stem: p for p in paths if kind is None or config_kind(p) == kind}


def config_kind(path) -> str:
    """``"bench"`` (lists solvers), ``"train"`` (names a prior kind) or ``"other"`` (e.g. the patient split)."""
    try:
        keys = load_yaml(path)
    except ConfigError:
        return "other"
    return "bench" if "solvers" in keys else "train" if "kind" in keys else "other"


def config_description(path) -> str:
    """The first comment line of a config's header ("" without one): what ``--list-configs`` prints."""
    for line in Path(path).read_text().splitlines():
        text = line.strip()
        if text and not text.startswith("#"):
            break  # past the header
        if text.lstrip("#").strip():
            return text.lstrip("#").strip()
    return ""


def resolve_config(spec) -> Path:
    """The config file of a ``--config`` argument: an existing path first, else the shipped config of that
    name (``wavelet_l1_r4`` or ``wavelet_l1_r4.yaml``); ConfigError naming close matches otherwise."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    shipped = shipped_configs()
    name = path.name[:-len(SUFFIX)] if path.name.endswith(SUFFIX) else path.name
    bare = path.parent == Path(".") and not path.is_dir()
    if bare and name in shipped:
        return shipped[name]
    if not bare:  # a path: never silently swapped for a shipped file of the same name
        hint = f"; the shipped config of that name is --config {name}" if name in shipped else ""
        raise ConfigError(where(spec, f"config file not found{hint}"))
    close = _close_names(name, shipped)
    listed = f"close matches: {', '.join(close)}" if close else f"shipped: {', '.join(shipped) or 'none'}"
    raise ConfigError(where(spec, f"no such config file and no shipped config of that name ({listed}; "
                                  "--list-configs prints them all)"))


def _close_names(name: str, names, n: int = 5) -> list[str]:
    """Names containing ``name`` (a shortened name), then spelling neighbours (a typo), at most ``n``."""
    close = [x for x in names if name and name in x]
    close += [x for x in difflib.get_close_matches(name, list(names), n=n, cutoff=0.6) if x not in close]
    return close[:n]


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


# --------------------------------------------------------------------------------- collected problems
def config_error(problems, cls=ConfigError) -> ConfigError:
    """One ``cls`` error for all ``problems`` (each "<file>: '<key>' ..."), kept as a list in ``.problems``."""
    problems = list(problems)
    text = problems[0] if len(problems) == 1 else \
        f"{len(problems)} problems in the config:\n" + "\n".join(f"  {p}" for p in problems)
    exc = cls(text)
    exc.problems = problems
    return exc


def problems_of(exc: ConfigError) -> list[str]:
    """The problems ``exc`` reports: its ``.problems``, or its message for one raised elsewhere."""
    return list(getattr(exc, "problems", None) or [str(exc)])


def _gather(convert, items) -> list:
    """``[convert(item) for item in items]``, every item's ConfigError raised together instead of the first."""
    out, problems = [], []
    for item in items:
        try:
            out.append(convert(item))
        except ConfigError as exc:
            problems += problems_of(exc)
    if problems:
        raise config_error(problems)
    return out


class Problems(list):
    """The problems one ``validate`` finds, each ``"<file>: '<dotted key>' <problem>"``; ``raise_any`` raises
    them together. A problem text starting with ":" follows the key directly (``'a.b': R=17 ...``)."""

    def __init__(self, source, prefix=""):
        super().__init__()
        self.source, self.prefix = source, prefix

    def add(self, key, problem: str):
        sep = "" if problem.startswith(":") else " "
        self.append(where(self.source, f"'{join_key(self.prefix, key)}'{sep}{problem}"))

    def raise_any(self):
        if self:
            raise config_error(self)


# ------------------------------------------------------------------------------------- dict <-> dataclass
def from_dict(cls, data, source=None, prefix: str = ""):
    """Build dataclass ``cls`` from ``data``, recursively; ConfigError ``"<source>: <dotted key>: ..."``.

    Checks: unknown keys, missing required keys (no default, or ``metadata={"required": True}``: a default for
    code that builds the dataclass directly, but a config file must name the key), and types (``int`` accepted
    for ``float``, NaN refused, ``None`` only for optional fields, ``list[...]`` / ``dict[str, ...]`` / unions /
    nested dataclasses / ``Any``).
    A dataclass may define ``validate(self, source, prefix)`` for cross-field checks; it is called after
    building. All problems are raised together (:func:`config_error`), nested sections included.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(where(source, f"'{prefix or '<top>'}' must be a mapping, got {_kind(data)}"))
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    data, problems, spelled = current_keys(cls, data, source, prefix)
    problems += [where(source, f"unknown key '{join_key(prefix, key)}' (known: {', '.join(fields)})")
                 for key in data if key not in fields]
    kwargs = {}
    for name, f in fields.items():
        dotted = join_key(prefix, spelled.get(name, name))  # errors name the key as the file spells it
        if name in data:
            try:
                kwargs[name] = _convert(hints[name], data[name], source, dotted)
            except ConfigError as exc:
                problems += problems_of(exc)
        elif (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING) \
                or f.metadata.get("required"):
            problems.append(where(source, f"missing required key '{dotted}'"))
        else:  # an omitted section still needs the keys it requires (e.g. 'data.path' of a training config)
            problems += [where(source, f"missing required key '{key}'") for key in _required_keys(hints[name], dotted)]
    if problems:  # cross-field checks on a half-built section would only echo these
        raise config_error(problems)
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate(source, prefix)
    return obj


def current_keys(cls, data: dict, source=None, prefix: str = "") -> tuple[dict, list[str], dict]:
    """``data`` with each former key of a field of ``cls`` (``metadata={"former": "old"}``: a section that was
    renamed) under the field's name; the problems (a file that gives both names); field name -> former key
    used."""
    data, problems, spelled = dict(data), [], {}
    for f in dataclasses.fields(cls):
        former = f.metadata.get("former")
        if former is None or former not in data:
            continue
        if f.name in data:
            problems.append(where(source, f"'{join_key(prefix, former)}' and '{join_key(prefix, f.name)}' are "
                                          f"the same section ('{former}' is its former name): give one"))
        data[f.name] = data.pop(former)
        spelled[f.name] = former
    return data, problems, spelled


def _required_keys(tp, prefix: str) -> list[str]:
    """Dotted keys that a dataclass type ``tp`` requires (``metadata={"required": True}``), nested sections
    included; [] for other types."""
    if not (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
        return []
    hints = typing.get_type_hints(tp)
    out = []
    for f in dataclasses.fields(tp):
        if not f.init:
            continue
        dotted = join_key(prefix, f.name)
        if f.metadata.get("required"):
            out.append(dotted)
        else:
            out += _required_keys(hints[f.name], dotted)
    return out


def to_dict(obj) -> Any:
    """Dataclasses -> plain dicts/lists (JSON and YAML serialisable), recursively. A field with
    ``metadata={"omit_default": True}`` is left out while it holds its default (a key added later then leaves
    the dicts, and hashes, of older configs as they were)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not (f.metadata.get("omit_default") and getattr(obj, f.name) == f.default)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def load_config(cls, path, overrides=()):
    """``from_dict(cls, apply_overrides(load_yaml(path), overrides), source=path)``, a renamed section
    (``metadata={"former": ...}``) reachable by either name in the file and in the overrides."""
    return from_dict(cls, overridden(cls, load_yaml(path), overrides, path), source=path)


def overridden(cls, data, overrides, source=None) -> dict:
    """:func:`apply_overrides` on ``data``, an override of a renamed top-level section of ``cls``
    (``metadata={"former": ...}``) applied to the section under the name the file gives it (``masks.seeds=[1]``
    reaches a file's ``acquisition:`` and the other way round)."""
    names = {}  # either name of a renamed section -> the name this file uses
    for f in dataclasses.fields(cls):
        former = f.metadata.get("former")
        if former is not None and isinstance(data, dict):
            used = former if former in data and f.name not in data else f.name
            names.update({former: used, f.name: used})

    def as_in_file(override):
        head, dot, rest = str(override).partition(".")
        return f"{names[head]}.{rest}" if dot and head in names else override

    return apply_overrides(data, [as_in_file(o) for o in overrides or ()])


def join_key(prefix: str, key) -> str:
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
        return _gather(lambda iv: _convert(arg, iv[1], source, f"{dotted}.{iv[0]}"), enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(where(source, f"'{dotted}' must be a mapping, got {_kind(value)}"))
        args = typing.get_args(tp)
        val_t = args[1] if len(args) == 2 else Any
        keys = [str(k) for k in value]
        return dict(zip(keys, _gather(lambda kv: _convert(val_t, kv[1], source, f"{dotted}.{kv[0]}"),
                                      value.items())))
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value != value:
                raise ConfigError(where(source, f"'{dotted}' must be a number, got NaN"))
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
