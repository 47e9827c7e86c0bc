"""What a benchmark computes: its items, their keys, seeds and fingerprints.

One *item* is (slice id, solver label, R, mask seed). Its key names it in the partial files; its
:func:`item_fingerprint` says whether another config would compute it identically (then a finished item is
reused instead of recomputed); its :func:`generator_seed` is the same across solvers, processes, restarts and
world sizes.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from .config import BenchConfig, SolverEntry
from ..config import to_dict


@dataclass(frozen=True)
class Item:
    slice_id: str
    label: str
    acceleration: float
    seed: int

    @property
    def key(self) -> str:
        return item_key(self.slice_id, self.label, self.acceleration, self.seed)


def item_key(slice_id, label, acceleration, seed) -> str:
    return f"{slice_id}|{label}|R{float(acceleration):g}|seed{int(seed)}"


def uncertainty_key(slice_id, label, acceleration) -> str:
    """Key of the uncertainty map of one (slice, solver, R) over the uncertainty mask seeds."""
    return f"uncertainty|{slice_id}|{label}|R{float(acceleration):g}"


def generator_seed(seed: int, slice_id: str, acceleration: float, mask_seed: int) -> int:
    """Stable 63-bit seed from (global seed, slice id, R, mask seed) (sha256, not Python's salted hash)."""
    text = f"{int(seed)}|{slice_id}|{float(acceleration):g}|{int(mask_seed)}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & (2 ** 63 - 1)


def uncertainty_labels(cfg: BenchConfig) -> list[str]:
    if not cfg.uncertainty.enabled:
        return []
    return list(cfg.uncertainty.solvers or [s.display for s in cfg.solvers])


def solver_seeds(cfg: BenchConfig, entry: SolverEntry) -> list[int]:
    """Mask seeds of one solver: the benchmark's, plus the uncertainty seeds when it takes part."""
    seeds = list(cfg.acquisition.seeds)
    if entry.display in uncertainty_labels(cfg):
        seeds += [s for s in cfg.uncertainty.seed_list if s not in seeds]
    return seeds


def plan(cfg: BenchConfig, slice_ids) -> list[Item]:
    """Every item of the benchmark, in execution order (slice, R, seed, solver)."""
    seeds_of = {e.display: solver_seeds(cfg, e) for e in cfg.solvers}
    seeds = list(dict.fromkeys(s for e in cfg.solvers for s in seeds_of[e.display]))  # first-seen order
    return [Item(sid, e.display, float(r), seed)
            for sid in slice_ids for r in cfg.acquisition.accelerations for seed in seeds
            for e in cfg.solvers if seed in seeds_of[e.display]]


def hash_view(config: dict) -> dict:
    """A :func:`to_dict` config as hashes see it: the acquisition section under its first name, ``masks``,
    so a config that spells it either way, and results made before the rename, keep their hashes."""
    config = dict(config)
    if "acquisition" in config:
        config["masks"] = config.pop("acquisition")
    return config


def acquisition_section(config: dict) -> dict:
    """The acquisition section of a :func:`to_dict` config or a results file, whichever name it has."""
    return hash_view(config).get("masks") or {}


def config_hash(cfg: BenchConfig) -> str:
    """Hash of everything that changes results (not the ``output`` section)."""
    d = hash_view(to_dict(cfg))
    d.pop("output", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


# What one item's result depends on besides its key (slice id, label, R, mask seed): the slice filters,
# the lists of R and seeds, the pairs, uncertainty and output settings only choose or report items.
_ITEM_INDEPENDENT = {"data": ("contrasts", "patients", "ids", "max_slices"), "masks": ("accelerations", "seeds")}


def solver_labels(config: dict) -> list[str]:
    """Labels of the solvers of a :func:`to_dict` config."""
    return [e.get("label") or e.get("name") for e in config.get("solvers", [])]


def item_fingerprint(config: dict, label: str, ignore_label: bool = False) -> str | None:
    """Hash of everything that determines the items of solver ``label`` under ``config`` (a
    :func:`to_dict` config); None when the config has no such solver. ``ignore_label`` leaves the label (and
    the reported training size) out, to match a solver across configs that name it differently."""
    config = hash_view(config)
    entry = next((e for e in config.get("solvers", []) if (e.get("label") or e.get("name")) == label), None)
    if entry is None:
        return None
    if ignore_label:
        entry = {k: v for k, v in entry.items() if k not in ("label", "training_size")}
    parts = {"seed": config.get("seed"), "device": config.get("device"), "crop": config.get("crop"), "solver": entry}
    for section, independent in _ITEM_INDEPENDENT.items():
        parts[section] = {k: v for k, v in (config.get(section) or {}).items() if k not in independent}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def unchanged_solvers(previous: dict, new: dict) -> set[str]:
    """Labels of ``previous`` (a :func:`to_dict` config) whose items ``new`` computes identically."""
    return {lab for lab in solver_labels(previous) if item_fingerprint(new, lab) == item_fingerprint(previous, lab)}
