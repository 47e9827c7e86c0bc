"""The JSONL training log of an output folder: one record per logged step, appended unbuffered."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..atomic import read_jsonl, write_text

LOG_NAME = "train_log.jsonl"


def read_log(out_dir) -> list[dict]:
    """The JSONL training log of an output folder as a list of records (a torn last line is dropped with a
    warning; a damaged line before it raises :class:`DataError`)."""
    return read_jsonl(Path(out_dir) / LOG_NAME)


def truncate_log(path: Path, step: int) -> None:
    """Drop log lines after ``step`` (written after the checkpoint being resumed from) and a torn last line."""
    if not path.is_file():
        return
    keep = [r for r in read_jsonl(path) if r["step"] <= step]
    write_text(path, "".join(json.dumps(r) + "\n" for r in keep))


def append_text(log, path: Path, text: str) -> None:
    """Write ``text`` to the unbuffered log file ``log``; a failed write names ``path``."""
    data = text.encode()
    try:
        while data:
            data = data[log.write(data):]
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


def loss_tenths(log: list[dict]) -> dict[str, float]:
    """Mean loss over the first, middle and last tenth of a run's log: a convergence summary."""
    losses = np.asarray([r["loss"] for r in log], dtype=float)
    n = max(1, len(losses) // 10)
    mid = len(losses) // 2 - n // 2
    return {"first_tenth": float(losses[:n].mean()), "middle_tenth": float(losses[mid:mid + n].mean()),
            "last_tenth": float(losses[-n:].mean())}
