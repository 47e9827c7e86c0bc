"""File helpers shared by the data pipeline, checkpoints and the benchmark: content digests, safe file names."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from ..errors import DataError, where


def sha256_file(path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks (checkpoints can be hundreds of MB)."""
    h = hashlib.sha256()
    with open(Path(path), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def safe_name(text) -> str:
    """File-name-safe version of an id or label: runs of other characters become ``_``, no leading/trailing
    ``_``, never empty."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "x"


def load_npy(path, what: str = "array", missing: str = "no such file") -> np.ndarray:
    """One ``.npy`` array (never pickles, never an ``.npz`` archive); :class:`DataError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(where(path, missing))
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(where(path, f"cannot read the {what} .npy file ({exc})")) from None
    if not isinstance(arr, np.ndarray):
        raise DataError(where(path, f"{what} file must hold one .npy array, not an .npz archive"))
    return arr
