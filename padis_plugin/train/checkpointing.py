"""The checkpoints of a training output folder: ``checkpoints/ckpt_step<N>.safetensors / .json``, the
``latest.json`` pointer to the newest complete one, and keep-last pruning (never of the one it points to)."""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

from ..errors import CheckpointError, where

LATEST_NAME = "latest.json"


def checkpoint_stem(step: int) -> str:
    """The checkpoint of ``step``, relative to the output folder and without suffix (as latest.json names it)."""
    return f"checkpoints/ckpt_step{step:07d}"


def checkpoint_files(stem: Path) -> list[Path]:
    return [Path(str(stem) + ".safetensors"), Path(str(stem) + ".json")]


def latest_checkpoint(out_dir) -> Path | None:
    """Stem of the checkpoint ``latest.json`` points to (None when there is none); CheckpointError if broken."""
    pointer = Path(out_dir) / LATEST_NAME
    if not pointer.is_file():
        return None
    try:
        rel = json.loads(pointer.read_text())["checkpoint"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(where(pointer, f"unreadable latest-checkpoint pointer ({exc})")) from None
    return Path(out_dir) / rel


def discard_unfinished(out_dir, stem: Path) -> None:
    """Remove what was written of checkpoint ``stem`` unless latest.json points to it (then it is complete)."""
    try:
        pointed = latest_checkpoint(out_dir)
    except CheckpointError:
        pointed = None
    if pointed != stem:
        for path in checkpoint_files(stem):
            path.unlink(missing_ok=True)


def prune_checkpoints(out_dir, keep: int | None) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints (0 / None: keep all); never the one latest.json points
    to. Returns the deleted files; a file that cannot be deleted only warns."""
    if not keep:
        return []
    out_dir = Path(out_dir)
    latest = latest_checkpoint(out_dir)
    by_step: dict[int, list[Path]] = {}
    for path in (out_dir / "checkpoints").glob("ckpt_step*"):
        m = re.fullmatch(r"ckpt_step(\d+)\.(safetensors|json)", path.name)
        if m:
            by_step.setdefault(int(m[1]), []).append(path)
    deleted = []
    for step in sorted(by_step)[:-keep]:
        for path in by_step[step]:
            if latest is not None and path.name.startswith(latest.name + "."):
                continue
            try:
                path.unlink()
                deleted.append(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                warnings.warn(f"{path}: cannot delete an old checkpoint ({exc})")
    return deleted
