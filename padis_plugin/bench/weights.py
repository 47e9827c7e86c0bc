"""What each solver of a benchmark runs with beyond its config entry: the sha256 of its checkpoint's tensor file and
its resolved parameters (defaults and tuned settings filled in).

An item's fingerprint (:mod:`.items`) hashes the config as written, so a prior retrained under the same name, or a
changed default or tuned setting, would leave every finished item looking reusable. The results folder therefore
records both beside the config (``resolved_config.json``, keys ``checkpoints`` and ``settings``), and a solver
whose record differs from what it runs with now is computed afresh. Items whose folder recorded nothing for their
solver (written before these records) are reused as before, and their solver stays unrecorded: the folder does not
certify what it cannot know.
"""
from __future__ import annotations

import json

from ..errors import PadisError
from .config import BenchConfig

#: resolved_config.json keys of the records
RECORDS = ("checkpoints", "settings")


def checkpoint_digests(cfg: BenchConfig, grid: int | None = None) -> dict[str, str]:
    """label -> sha256 of the tensors of the checkpoint that solver runs with (the one its parameters name, else
    its default for ``grid``); solvers without a checkpoint, or whose checkpoint records no digest, are left out."""
    return _digests(resolved_settings(cfg, grid))


def _digests(settings: dict[str, dict]) -> dict[str, str]:
    """:func:`checkpoint_digests` from the solvers' resolved settings (label -> parameters)."""
    from ..checkpoints import read_checkpoint_config
    from ..prior.denoiser import resolve_checkpoint

    digests = {}
    for label, params in settings.items():
        try:
            checkpoint = params.get("checkpoint")
            if not checkpoint:
                continue
            digest = (read_checkpoint_config(resolve_checkpoint(checkpoint)).get("checkpoint") or {}).get("sha256")
        except (PadisError, TypeError):  # building the solvers reports a bad entry; here it has no digest
            continue
        if isinstance(digest, str) and digest:
            digests[label] = digest
    return digests


def resolved_settings(cfg: BenchConfig, grid: int | None = None) -> dict[str, dict]:
    """label -> every parameter that solver runs with (``resolved_params``: defaults and tuned settings filled
    in), as JSON reads them back; entries that do not resolve are left out (building the solvers reports them)."""
    from ..solvers.registry import resolved_params

    settings = {}
    for entry in cfg.solvers:
        try:
            settings[entry.display] = json.loads(json.dumps(resolved_params(entry.name, dict(entry.params), grid),
                                                            default=str))
        except (PadisError, TypeError, ValueError):
            continue
    return settings


def run_records(cfg: BenchConfig, grid: int | None = None) -> dict[str, dict]:
    """The records of :data:`RECORDS` for ``cfg`` now (each entry resolved once)."""
    settings = resolved_settings(cfg, grid)
    return {"checkpoints": _digests(settings), "settings": settings}


def _differs(then, now) -> bool:
    """Two records of one solver differ: digests when unequal, settings when a parameter both name has another
    value (a parameter added since, or dropped, with the default that keeps the old behaviour, does not count)."""
    if isinstance(then, dict) and isinstance(now, dict):
        return any(then[k] != now[k] for k in then.keys() & now.keys())
    return then != now


def _changed(recorded: dict | None, current: dict, labels: dict[str, str] | None = None) -> set[str]:
    """Labels of ``current`` (label -> digest or settings) whose value differs from the one ``recorded`` (a
    results folder's record) says their items ran with. ``labels``: label here -> label there
    (``output.reuse_from``)."""
    recorded, there = recorded or {}, labels or {}
    return {mine for mine, value in current.items()
            if there.get(mine, mine) in recorded and _differs(recorded[there.get(mine, mine)], value)}


def changed_records(recorded: dict | None, current: dict[str, dict], labels: dict[str, str] | None = None) -> set[str]:
    """Labels whose checkpoint digest or resolved settings differ from a folder's records (``recorded``: its
    resolved config)."""
    recorded = recorded or {}
    return set().union(*(_changed(recorded.get(key), current.get(key) or {}, labels) for key in RECORDS))


def unknown_to(recorded: dict | None, labels, there: dict[str, str] | None = None) -> dict[str, set[str]]:
    """Per record key, the ``labels`` (solvers whose items are kept from a folder with records ``recorded``) that
    record says nothing about; ``there``: label here -> label in that folder."""
    recorded, there = recorded or {}, there or {}
    return {key: {lab for lab in labels if there.get(lab, lab) not in (recorded.get(key) or {})} for key in RECORDS}


def certified(current: dict[str, dict], unknown: dict[str, set[str]]) -> dict[str, dict]:
    """The records a folder writes: ``current`` less, per key, the labels whose kept items' record is unknown."""
    return {key: {lab: v for lab, v in (current.get(key) or {}).items() if lab not in unknown.get(key, set())}
            for key in RECORDS}
