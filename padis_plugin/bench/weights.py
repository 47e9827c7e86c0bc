"""Which weights each solver of a benchmark runs with: the sha256 of its checkpoint's tensor file.

A config names its prior by a shipped name or a path, and an item's fingerprint (:mod:`.items`) hashes the config
only: a prior retrained under the same name would leave every finished item of it looking reusable. The results
folder therefore records these digests beside the config (``resolved_config.json``, key ``checkpoints``), and a
solver whose recorded digest differs from its checkpoint's now is computed afresh. A folder written before the
digests were recorded has none to compare: its items are reused as before.
"""
from __future__ import annotations

from ..errors import PadisError
from .config import BenchConfig


def checkpoint_digests(cfg: BenchConfig, grid: int | None = None) -> dict[str, str]:
    """label -> sha256 of the tensors of the checkpoint that solver runs with (the one its parameters name, else
    its default for ``grid``); solvers without a checkpoint, or whose checkpoint records no digest, are left out."""
    from ..checkpoints import read_checkpoint_config
    from ..prior.denoiser import resolve_checkpoint
    from ..solvers.registry import resolved_params

    digests = {}
    for entry in cfg.solvers:
        try:
            checkpoint = resolved_params(entry.name, dict(entry.params), grid).get("checkpoint")
            if not checkpoint:
                continue
            digest = (read_checkpoint_config(resolve_checkpoint(checkpoint)).get("checkpoint") or {}).get("sha256")
        except (PadisError, TypeError):  # building the solvers reports a bad entry; here it has no digest
            continue
        if isinstance(digest, str) and digest:
            digests[entry.display] = digest
    return digests


def changed_weights(recorded: dict | None, digests: dict[str, str], labels: dict[str, str] | None = None) -> set[str]:
    """Labels of ``digests`` whose checkpoint differs from the one ``recorded`` (a results folder's
    ``checkpoints``) says their items ran with. ``labels``: label here -> label there (``output.reuse_from``)."""
    recorded = recorded or {}
    return {mine for mine, digest in digests.items()
            if (labels or {}).get(mine, mine) in recorded and recorded[(labels or {}).get(mine, mine)] != digest}
