"""Checkpoints as safetensors tensors plus a JSON config beside them (never pickle).

Layout: ``<stem>.safetensors`` holds flat keys ``"<group>.<name>"`` (groups such as ``model``, ``ema``,
``optim``); ``<stem>.json`` holds the caller's config at top level plus a reserved ``"checkpoint"`` entry
(format, version, groups, dtype, SHA-256 of the tensor file, so a tensor file that does not belong to its JSON is
caught). Both files are written atomically. Every failure to read raises :class:`CheckpointError` naming the file.
A JSON without a hash cannot be checked: the loader refuses it where the hash is required (the checkpoints the
package ships) and warns otherwise (a user's file).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from padis_plugin.atomic import atomic_path, write_json
from padis_plugin.data.files import sha256_file
from padis_plugin.errors import CheckpointError, where

FORMAT = "padis-checkpoint"
VERSION = 1
_RESERVED = "checkpoint"


def checkpoint_paths(path_or_stem) -> tuple[Path, Path]:
    """(``<stem>.safetensors``, ``<stem>.json``) for a stem or either file's path."""
    p = Path(path_or_stem)
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def save_checkpoint(stem, groups: dict[str, dict[str, torch.Tensor]], config: dict, fp16: bool = False) -> Path:
    """Write ``<stem>.safetensors`` and ``<stem>.json``; return the tensor file's path.

    :param groups: ``{group: {name: tensor}}``; group names must not contain ``"."``.
    :param config: JSON-serialisable dict (e.g. ``{"kind": "padis", "model": {...}, ...}``).
    :param bool fp16: store floating tensors as float16 (for shipping EMA-only weights; loaders upcast).
    """
    from safetensors.torch import save_file

    st_path, js_path = checkpoint_paths(stem)
    if _RESERVED in config:
        raise CheckpointError(where(js_path, f"config key {_RESERVED!r} is reserved"))
    flat = {}
    for g, tensors in groups.items():
        if not g or "." in g:
            raise CheckpointError(where(st_path, f"invalid group name {g!r}"))
        for name, t in tensors.items():
            t = t.detach().to("cpu")
            if fp16 and t.is_floating_point():
                t = t.to(torch.float16)
            flat[f"{g}.{name}"] = t.contiguous().clone()  # clone: safetensors refuses shared storage
    with atomic_path(st_path) as tmp:
        save_file(flat, str(tmp))
        digest = sha256_file(tmp)
    meta = {"format": FORMAT, "version": VERSION, "groups": sorted(groups), "fp16": bool(fp16),
            "tensors": st_path.name, "sha256": digest}
    write_json(js_path, {**config, _RESERVED: meta})
    return st_path


def load_checkpoint(path_or_stem, device="cpu", verify: bool = True,
                    require_hash: bool = False) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
    """Read a checkpoint written by :func:`save_checkpoint` -> ``(groups, config)``.

    Missing, truncated or corrupt files, a tensor file whose hash differs from its JSON, or a tensor holding NaN
    or inf, raise :class:`CheckpointError` (naming the file and the tensor). A JSON without ``sha256`` (missing,
    null or empty) raises with ``require_hash`` (files the package ships) and otherwise, with ``verify``, warns
    once per load (:class:`UserWarning` naming the file) that the tensors go unchecked.
    """
    from safetensors.torch import load_file

    st_path, js_path = checkpoint_paths(path_or_stem)
    config = read_checkpoint_config(js_path)
    meta = config.pop(_RESERVED)
    if not st_path.is_file():
        raise CheckpointError(where(st_path, "checkpoint tensor file not found"))
    digest = meta.get("sha256")
    if not digest:
        if require_hash:
            raise CheckpointError(where(js_path, "checkpoint JSON has no 'sha256' of its tensor file; a shipped "
                                                 "checkpoint must carry one (its tensors cannot be checked)"))
        if verify:
            warnings.warn(where(js_path, "checkpoint JSON has no 'sha256' of its tensor file: the tensors are "
                                         "loaded unchecked (save_checkpoint writes the hash)"), UserWarning,
                          stacklevel=2)
    elif verify and sha256_file(st_path) != digest:
        raise CheckpointError(where(st_path, "tensor file does not match the hash in its JSON (corrupt or replaced)"))
    try:
        flat = load_file(str(st_path), device=str(device))
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt headers
        raise CheckpointError(where(st_path, f"cannot read safetensors file ({e})")) from None
    for key, t in flat.items():
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(where(st_path, f"tensor {key!r} holds {bad} non-finite (NaN or inf) value(s) "
                                                 f"of {t.numel()}; the checkpoint is unusable"))
    groups: dict[str, dict[str, torch.Tensor]] = {g: {} for g in meta.get("groups", [])}
    for key, t in flat.items():
        g, _, name = key.partition(".")
        groups.setdefault(g, {})[name] = t
    return groups, config


def read_checkpoint_config(path_or_stem) -> dict:
    """The JSON of a checkpoint (config plus the reserved ``"checkpoint"`` entry)."""
    _, js_path = checkpoint_paths(path_or_stem)
    if not js_path.is_file():
        raise CheckpointError(where(js_path, "checkpoint JSON not found"))
    try:
        config = json.loads(js_path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(where(js_path, f"cannot read checkpoint JSON ({e})")) from None
    meta = config.get(_RESERVED) if isinstance(config, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(where(js_path, f"not a {FORMAT} JSON"))
    if meta.get("version") != VERSION:
        raise CheckpointError(where(js_path, f"unsupported checkpoint version {meta.get('version')}"))
    return config


def get_group(groups: dict, name: str, path=None) -> dict[str, torch.Tensor]:
    """``groups[name]`` or :class:`CheckpointError` naming the file."""
    if name not in groups:
        raise CheckpointError(where(path, f"checkpoint has no group {name!r} (has {sorted(groups)})"))
    return groups[name]


def load_state_into(module: torch.nn.Module, state: dict[str, torch.Tensor], path=None) -> None:
    """Copy ``state`` into ``module`` exactly (keys and shapes must match; dtypes are cast to the module's)."""
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(where(path, f"weights do not match the model: missing {missing[:3]}"
                                          f"{'...' if len(missing) > 3 else ''}, unexpected {unexpected[:3]}"
                                          f"{'...' if len(unexpected) > 3 else ''}"))
    for k, t in state.items():
        if tuple(t.shape) != tuple(own[k].shape):
            raise CheckpointError(where(path, f"shape mismatch for {k!r}: checkpoint {tuple(t.shape)}, "
                                              f"model {tuple(own[k].shape)}"))
    module.load_state_dict({k: t.to(dtype=own[k].dtype, device=own[k].device) for k, t in state.items()})


# -- optimizer state -------------------------------------------------------------------------------------------

def _encode(v):
    """JSON form keeping tuples (Adam's betas) distinguishable from lists."""
    if isinstance(v, tuple):
        return {"__tuple__": [_encode(e) for e in v]}
    if isinstance(v, list):
        return [_encode(e) for e in v]
    if isinstance(v, dict):
        return {k: _encode(e) for k, e in v.items()}
    if isinstance(v, torch.Tensor):
        raise TypeError("tensor in optimizer hyper-parameters")
    return v


def _decode(v):
    if isinstance(v, dict):
        if set(v) == {"__tuple__"}:
            return tuple(_decode(e) for e in v["__tuple__"])
        return {k: _decode(e) for k, e in v.items()}
    if isinstance(v, list):
        return [_decode(e) for e in v]
    return v


def optimizer_state_to_tensors(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into tensors (keys ``"<param id>.<name>"``) and JSON-able metadata.

    Round-trips exactly with :func:`optimizer_state_from_tensors` (Adam: step, exp_avg, exp_avg_sq,
    param_groups with betas as a tuple).
    """
    tensors, scalars = {}, {}
    for pid, st in state_dict["state"].items():
        for name, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{pid}.{name}"] = v
            else:
                scalars.setdefault(str(pid), {})[name] = _encode(v)
    meta = {"param_groups": _encode(state_dict["param_groups"]), "scalars": scalars,
            "param_ids": [str(p) for p in state_dict["state"]]}
    return tensors, meta


def optimizer_state_from_tensors(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Inverse of :func:`optimizer_state_to_tensors` -> a dict for ``optimizer.load_state_dict``."""
    state: dict = {int(p): {} for p in meta.get("param_ids", [])}
    for key, t in tensors.items():
        pid, _, name = key.partition(".")
        state.setdefault(int(pid), {})[name] = t
    for pid, vals in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(_decode(vals))
    return {"state": state, "param_groups": _decode(meta["param_groups"])}
