"""Image-array training sets: N real-channel images (N, C, H, H) in one ``.npz`` or HDF5 file, for priors of any
even number C of image channels (e.g. C = 10: the five complex MRF time-series images).

Keys, the same in both formats (an HDF5 file holds them as top-level datasets):

- ``images`` (N, C, H, H), real floating (read as float32), finite, C even, channels in the layout of
  :mod:`padis_plugin.prior.channels` (``[Re z_0, Im z_0, Re z_1, Im z_1, ...]``);
- ``ids`` (N,) strings, optional: unique image names (default: the zero-padded index, ``"000"``, ``"001"``, ...);
- ``patient_ids`` (N,) strings, optional: the subject of each image, for ``data.patients`` and subsets of one
  image per subject (default: every image its own subject).

An ``.npz`` file is always read as image arrays (``allow_pickle=False``: strings must be numpy string arrays,
not objects); an HDF5 file when it holds a top-level ``images`` dataset (a prepared MRI file holds ``slices``).
:func:`write_image_arrays` writes either format.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..atomic import atomic_path, hdf5_file
from ..errors import DataError, where

KEYS = ("images", "ids", "patient_ids")


@dataclass
class ImageArrays:
    """An image-array file's content: ``images`` (N, C, H, H) float32 and one id and subject per image."""

    images: np.ndarray
    ids: list[str]
    patient_ids: list[str]


def is_image_arrays(path) -> bool:
    """Whether ``path`` names an existing image-array file (an ``.npz``, or HDF5 with a top-level ``images``)."""
    path = Path(path)
    if not path.is_file():
        return False
    if path.suffix == ".npz":
        return True
    try:
        if not h5py.is_hdf5(path):
            return False
        with h5py.File(path, "r") as f:
            return isinstance(f.get("images"), h5py.Dataset)
    except OSError:
        return False  # left to the prepared-file reader, which names the problem


def _strings(values, key: str, n: int, path) -> list[str]:
    arr = np.asarray(values)
    if arr.shape != (n,) or arr.dtype.kind not in "US":
        raise DataError(where(path, f"'{key}' must be ({n},) strings (one per image), got {arr.shape} {arr.dtype}"))
    return [v.decode() if isinstance(v, bytes) else str(v) for v in arr.tolist()]


def _read_raw(path: Path) -> dict:
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in KEYS if k in f.files}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise DataError(where(path, f"cannot read the image-array file ({exc})")) from None
    try:
        with h5py.File(path, "r") as f:
            return {k: (np.asarray(f[k].asstr()[()], dtype=str) if h5py.check_string_dtype(f[k].dtype) else f[k][()])
                    for k in KEYS if k in f}
    except (OSError, KeyError) as exc:
        raise DataError(where(path, f"cannot read the image-array file ({exc})")) from None


def read_image_arrays(path) -> ImageArrays:
    """Read and check an image-array file (module docstring); :class:`DataError` naming the file and key."""
    return _checked(_read_raw(Path(path)), path)


def _checked(raw: dict, path) -> ImageArrays:
    """The arrays ``raw`` (keys of :data:`KEYS`) checked and completed with the default ids and subjects."""
    if "images" not in raw:
        raise DataError(where(path, "no 'images' array: an image-array file holds images (N, C, H, H)"))
    images = raw["images"]
    if images.ndim != 4 or not np.issubdtype(images.dtype, np.floating) or not images.shape[0]:
        raise DataError(where(path, f"'images' must be a real floating array (N, C, H, H) with N >= 1, got "
                                    f"{images.shape} {images.dtype}"))
    n, c, h, w = images.shape
    if c % 2 or h != w:
        raise DataError(where(path, f"'images' {images.shape}: need an even number of channels (real and "
                                    "imaginary part of each complex image) and square images"))
    images = np.ascontiguousarray(images, dtype=np.float32)
    if not np.isfinite(images).all():
        raise DataError(where(path, f"'images' holds {int((~np.isfinite(images)).sum())} non-finite value(s)"))
    width = len(str(n - 1))
    ids = _strings(raw["ids"], "ids", n, path) if "ids" in raw else [f"{i:0{width}d}" for i in range(n)]
    if len(set(ids)) != n:
        raise DataError(where(path, "'ids' must be unique"))
    patients = _strings(raw["patient_ids"], "patient_ids", n, path) if "patient_ids" in raw else list(ids)
    return ImageArrays(images, ids, patients)


def write_image_arrays(path, images, ids=None, patient_ids=None) -> Path:
    """Write an image-array file (``.npz``, or HDF5 for any other suffix) atomically; returns its path.

    :param images: (N, C, H, H) real array (stored as float32).
    :param ids: N unique strings, or None (the reader's default).
    :param patient_ids: N strings, or None (every image its own subject).
    """
    path = Path(path)
    arrays = {"images": np.asarray(images)}
    for key, values in (("ids", ids), ("patient_ids", patient_ids)):
        if values is not None:
            arrays[key] = np.asarray([str(v) for v in values])
    arrays["images"] = _checked(arrays, path).images   # checked before anything is written
    if path.suffix == ".npz":
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, **arrays)
    else:
        with hdf5_file(path) as f:
            for key, value in arrays.items():
                f.create_dataset(key, data=value if key == "images" else value.astype(object),
                                 dtype=None if key == "images" else h5py.string_dtype())
    return path
