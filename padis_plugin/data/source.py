"""One way to a prepared dataset from what a user names: the bundled demo, a prepared file, or raw fastMRI data.

Raw fastMRI files and folders are prepared once into ``<cache>/prepared/``. The cache key holds what the
prepared file depends on: each source file's resolved path, size and modification time (so a rewritten or
touched source is prepared again, never served stale) and the preparation settings.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DataError, where
from .files import safe_name

if TYPE_CHECKING:  # the config schema imports BUNDLED_DEMO: keep torch and h5py out of that import
    from .prepared import PreparedDataset

#: The name that stands for the demo dataset built from the bundled brain slices (:func:`.bundled.demo_dataset`).
BUNDLED_DEMO = "bundled-demo"


def open_source(source, size: int | None = 384, slices="centre", contrasts=None, patients=None, ids=None,
                cache_dir=None, progress: bool = False) -> PreparedDataset:
    """The prepared dataset of ``source``, filtered by ``contrasts`` / ``patients`` / ``ids``.

    :param source: ``"bundled-demo"``, a prepared HDF5 file, or a raw fastMRI file or folder.
    :param size: grid N a raw source is prepared on; ``None`` refuses raw sources.
    :param slices: raw sources: ``"centre"``, ``"all"``, an index or indices per volume.
    :param cache_dir: cache folder (default ``$PADIS_CACHE`` or ``~/.cache/padis_plugin``).
    """
    from .prepared import PreparedDataset

    path = prepared_path(source, size, slices, contrasts, cache_dir, progress)
    return PreparedDataset(path, contrasts=contrasts, patients=patients, ids=ids)


def prepared_path(source, size: int | None = 384, slices="centre", contrasts=None, cache_dir=None,
                  progress: bool = False) -> Path:
    """Path of the prepared HDF5 file of ``source`` (see :func:`open_source`), preparing a raw source on a
    cache miss."""
    from .prepared import is_prepared

    if str(source) == BUNDLED_DEMO:
        from .bundled import demo_dataset

        return Path(demo_dataset(cache_dir=cache_dir, progress=progress))
    src = Path(source).expanduser()
    if not src.exists():
        raise DataError(where(src, "dataset not found (give a prepared .h5, a fastMRI file or folder, or "
                                   f"'{BUNDLED_DEMO}')"))
    if src.is_file() and is_prepared(src):
        return src
    if size is None:
        raise DataError(where(src, "not a prepared file; run padis-prepare first"))
    from .prepare import default_cache_dir, prepare

    settings = {"size": int(size), "slices": slices, "contrasts": contrasts}
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    out = cache / "prepared" / f"{safe_name(src.stem)}_{cache_key(src, settings)}.h5"
    if out.is_file():
        return out
    return Path(prepare(src, out, size=int(size), slices=slices, contrasts=contrasts, cache_dir=cache_dir,
                        progress=progress))


def cache_key(src: Path, settings: dict) -> str:
    """Hex digest of the source files' (resolved path, size, mtime in ns) and the preparation ``settings``."""
    files = [src] if src.is_file() else sorted(p for p in src.iterdir() if p.suffix == ".h5" and p.is_file())
    stamps = [[str(p.resolve()), st.st_size, st.st_mtime_ns] for p in files for st in [p.stat()]]
    text = json.dumps({"sources": stamps, "settings": settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
