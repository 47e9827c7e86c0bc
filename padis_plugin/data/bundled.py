"""Files shipped in ``padis_plugin/bundled/`` and the demo dataset prepared from the bundled brain slices."""
from __future__ import annotations

import tempfile
from importlib.resources import files
from pathlib import Path

from ..errors import DataError, PadisError, where
from .files import sha256_file
from .prepared import VERSION, PreparedDataset

DEMO_SOURCE = "brain_demo_slices.h5"
DEMO_VERSION = 1  # bump when the demo recipe below changes: cached demo files are then rebuilt


def bundled_path(name: str) -> Path:
    """Path of a file shipped in ``padis_plugin/bundled/``; :class:`DataError` if it is absent."""
    path = Path(str(files("padis_plugin") / "bundled" / name))
    if not path.is_file():
        raise DataError(where(path, "bundled file not found (incomplete installation?)"))
    return path


def demo_recipe(size: int = 128) -> dict:
    """Fixed simulation and preparation settings of the demo dataset at grid ``size``."""
    return {
        "version": DEMO_VERSION,
        "source": DEMO_SOURCE,
        "source_sha256": sha256_file(bundled_path(DEMO_SOURCE)),
        "size": int(size),
        "coils": 8,
        "snr_db": 30.0,                         # simulate.py definition: mean coil magnitude over noise SD
        "matrix": [int(size), int(size)],       # image matrix; the readout is 2x oversampled like fastMRI
        "readout_oversampling": 2,
        "seed": 0,
        # the published 30x30 corner is ~8% of 384 per side; keep that fraction (>= 8 for a stable estimate)
        "noise_region": max(8, round(30 * size / 384)),
    }


def demo_dataset(cache_dir=None, size: int = 128, progress: bool = False) -> Path:
    """Prepared HDF5 of the five bundled brain slices, simulated (8 coils, 30 dB) and prepared on first use.

    The file ``demo_<size>.h5`` lives in ``cache_dir`` (default ``$PADIS_CACHE`` or ``~/.cache/padis_plugin``)
    and is reused while its recorded recipe matches :func:`demo_recipe`.
    """
    from .prepare import default_cache_dir, prepare
    from .simulate import simulate_files

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    out = cache_dir / f"demo_{int(size)}.h5"
    recipe = demo_recipe(size)
    if _is_valid(out, recipe):
        return out
    with tempfile.TemporaryDirectory(prefix="padis_demo_") as tmp:
        simulate_files(bundled_path(DEMO_SOURCE), tmp, coils=recipe["coils"], snr_db=recipe["snr_db"],
                       matrix=tuple(recipe["matrix"]), seed=recipe["seed"],
                       readout_oversampling=recipe["readout_oversampling"], progress=progress)
        # the demo file is itself the cache: no per-slice map cache
        return prepare(tmp, out, size=size, slices="all", seed=recipe["seed"], cache=False, progress=progress,
                       noise_region=recipe["noise_region"], params={"demo": recipe})


def _is_valid(path: Path, recipe: dict) -> bool:
    if not path.is_file():
        return False
    try:
        ds = PreparedDataset(path)
    except PadisError:
        return False
    return ds.params.get("demo") == recipe and ds.size == recipe["size"] and len(ds) > 0 and _version(path)


def _version(path: Path) -> bool:
    import h5py

    with h5py.File(path, "r") as f:
        return int(f.attrs.get("version", -1)) == VERSION
