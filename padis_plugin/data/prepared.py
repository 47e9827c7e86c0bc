"""Prepared-slice files: the one HDF5 format every solver, benchmark and training run reads.

Layout: root attributes ``format="padis-prepared"``, ``version``, ``size`` (N) and ``params`` (JSON of the
preparation options); group ``slices/<id>`` holds ``kspace`` (C,N,N) complex64 normalised k-space,
``coil_maps`` (C,N,N) complex64, ``reference`` (N,N) complex64 CG-SENSE image, optional ``acquired_mask``
(N,N) for data that was acquired undersampled, and the attributes ``norm``, ``source_file``,
``slice_index``, ``contrast``, ``patient_id``, ``undersampled``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

from ..atomic import hdf5_file
from ..errors import DataError, where
from ..mask_check import check_mask

FORMAT = "padis-prepared"
VERSION = 1
_ARRAYS = ("kspace", "coil_maps", "reference")
_ATTRS = ("norm", "source_file", "slice_index", "contrast", "patient_id")


@dataclass
class PreparedSlice:
    """One prepared slice: normalised multi-coil k-space on an N x N grid, its coil maps and reference."""

    id: str
    kspace: np.ndarray
    coil_maps: np.ndarray
    reference: np.ndarray
    norm: float
    source_file: str
    slice_index: int
    contrast: str
    patient_id: str
    undersampled: bool = False
    acquired_mask: np.ndarray | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        return int(self.kspace.shape[-1])

    def meta(self) -> dict:
        return {
            "id": self.id,
            "source_file": self.source_file,
            "slice_index": self.slice_index,
            "contrast": self.contrast,
            "patient_id": self.patient_id,
            "undersampled": self.undersampled,
            "norm": self.norm,
        }


def validate_slice(slc: PreparedSlice, path="<memory>") -> None:
    """Check dtypes, ranks, shapes, finiteness and the mask; raise :class:`DataError` naming ``path`` and the
    slice (``"<path>[<id>]: ..."``)."""
    name = f"{path}[{slc.id}]"
    for key in _ARRAYS:
        arr = getattr(slc, key)
        if not isinstance(arr, np.ndarray) or not np.iscomplexobj(arr):
            raise DataError(where(name, f"{key} must be a complex array, got "
                                        f"{getattr(arr, 'dtype', type(arr).__name__)}"))
    if slc.kspace.ndim != 3:
        raise DataError(where(name, f"kspace must be (coils, N, N), got shape {slc.kspace.shape}"))
    c, h, w = slc.kspace.shape
    if h != w:
        raise DataError(where(name, f"kspace must be on a square N x N grid, got {h} x {w}"))
    if c < 1 or h < 1:
        raise DataError(where(name, f"kspace is empty, shape {slc.kspace.shape}"))
    if slc.coil_maps.shape != slc.kspace.shape:
        raise DataError(where(name, f"coil_maps shape {slc.coil_maps.shape} != kspace shape {slc.kspace.shape}"))
    if slc.reference.shape != (h, w):
        raise DataError(where(name, f"reference shape {slc.reference.shape} != ({h}, {w})"))
    if slc.acquired_mask is not None:
        if np.shape(slc.acquired_mask) != (h, w):
            raise DataError(where(name, f"acquired_mask shape {np.shape(slc.acquired_mask)} does not match "
                                        f"({h}, {w})"))
        check_mask(slc.acquired_mask, name, "acquired_mask")
    for key in _ARRAYS:
        if not np.isfinite(getattr(slc, key)).all():
            raise DataError(where(name, f"{key} holds non-finite values"))
    for key in ("kspace", "coil_maps"):
        if not np.any(getattr(slc, key)):
            raise DataError(where(name, f"{key} is all zeros"))
    try:
        norm = float(slc.norm)
    except (TypeError, ValueError):
        raise DataError(where(name, f"norm must be a positive finite number, got {slc.norm!r}")) from None
    if not np.isfinite(norm) or norm <= 0:
        raise DataError(where(name, f"norm must be a positive finite number, got {slc.norm}"))


def write_prepared(path, slices: list[PreparedSlice], params: dict | None = None) -> Path:
    """Write ``slices`` atomically to a prepared HDF5 file (all on one N x N grid)."""
    path = Path(path)
    if not slices:
        raise DataError(where(path, "no slices to write"))
    sizes = {s.size for s in slices}
    if len(sizes) != 1:
        raise DataError(where(path, f"all slices must share one grid size, got {sorted(sizes)}"))
    ids = [s.id for s in slices]
    if len(set(ids)) != len(ids):
        raise DataError(where(path, "slice ids are not unique"))
    for s in slices:
        validate_slice(s, path)
    with hdf5_file(path) as f:
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        f.attrs["size"] = sizes.pop()
        f.attrs["params"] = json.dumps(params or {})
        group = f.create_group("slices")
        for s in slices:
            g = group.create_group(s.id)
            g.create_dataset("kspace", data=s.kspace.astype(np.complex64))
            g.create_dataset("coil_maps", data=s.coil_maps.astype(np.complex64))
            g.create_dataset("reference", data=s.reference.astype(np.complex64))
            if s.acquired_mask is not None:
                g.create_dataset("acquired_mask", data=s.acquired_mask.astype(np.float32))
            g.attrs["norm"] = float(s.norm)
            g.attrs["source_file"] = str(s.source_file)
            g.attrs["slice_index"] = int(s.slice_index)
            g.attrs["contrast"] = str(s.contrast)
            g.attrs["patient_id"] = str(s.patient_id)
            g.attrs["undersampled"] = bool(s.undersampled)
    return path


def is_prepared(path) -> bool:
    """Whether an existing file is a prepared HDF5 file (root attribute ``format``); :class:`DataError` if it is
    not readable as HDF5."""
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == FORMAT
    except OSError as exc:
        raise DataError(where(path, f"not a readable HDF5 file ({exc})")) from None


def _open(path) -> h5py.File:
    path = Path(path)
    if not path.is_file():
        raise DataError(where(path, "prepared file not found"))
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(where(path, f"not a readable HDF5 file ({exc})")) from None
    if f.attrs.get("format") != FORMAT or "slices" not in f:
        f.close()
        raise DataError(where(path, f"not a prepared file (missing format='{FORMAT}' or group 'slices'); "
                                    "run padis-prepare first"))
    return f


class PreparedDataset(torch.utils.data.Dataset):
    """Slices of a prepared HDF5 file, optionally filtered by contrast, patient or id.

    Items are :class:`PreparedSlice`; arrays are read lazily, one slice per access.
    """

    def __init__(self, path, contrasts=None, patients=None, ids=None):
        self.path = Path(path)
        with _open(self.path) as f:
            self.size = _size_attr(f, self.path)
            try:
                self.params = json.loads(f.attrs.get("params", "{}"))
            except (TypeError, ValueError) as exc:
                raise DataError(where(self.path, f"root attribute 'params' is not JSON ({exc})")) from None
            self._meta = {}
            for key, g in f["slices"].items():
                self._meta[key] = _slice_meta(g, self.size, f"{self.path}[{key}]")
        wanted_contrasts = {c.lower() for c in contrasts} if contrasts else None
        wanted_patients = set(patients) if patients is not None else None
        if ids is not None:
            unknown = [i for i in ids if i not in self._meta]
            if unknown:
                raise DataError(where(self.path, f"unknown slice ids: {', '.join(unknown[:5])}"))
        self.ids = [
            key for key in (ids if ids is not None else sorted(self._meta))
            if (wanted_contrasts is None or self._meta[key]["contrast"].lower() in wanted_contrasts)
            and (wanted_patients is None or self._meta[key]["patient_id"] in wanted_patients)
        ]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index) -> PreparedSlice:
        key = self.ids[index] if isinstance(index, int) else index
        try:
            with h5py.File(self.path, "r") as f:
                g = f["slices"][key]
                arrays = {k: g[k][()] for k in _ARRAYS}
                mask = g["acquired_mask"][()] if "acquired_mask" in g else None
        except (OSError, KeyError) as exc:
            raise DataError(where(self.path, f"cannot read slice '{key}' ({exc})")) from None
        meta = self._meta[key]
        slc = PreparedSlice(id=key, **arrays, acquired_mask=mask, **meta)
        validate_slice(slc, self.path)
        if slc.size != self.size:
            raise DataError(where(f"{self.path}[{key}]", f"kspace grid {slc.size} differs from the file's size "
                                                         f"attribute {self.size}"))
        return slc

    def patients(self) -> list[str]:
        return sorted({self._meta[k]["patient_id"] for k in self.ids})

    def meta(self) -> list[dict]:
        return [{"id": k, **self._meta[k]} for k in self.ids]


def collate_slices(batch) -> list[PreparedSlice]:
    """``collate_fn`` for a ``torch.utils.data.DataLoader`` over prepared slices (a :class:`PreparedDataset`, or
    fastMRI's ``SliceDataset`` with ``prepare_slice`` as its transform): the batch as a list of slices, which
    :func:`padis_plugin.acquisition.batch_problems` turns into one batched problem. torch's default collate
    cannot stack a dataclass of arrays; the slices must share one grid to be batched."""
    batch = list(batch)
    bad = [type(s).__name__ for s in batch if not isinstance(s, PreparedSlice)]
    if bad:
        raise DataError(f"collate_slices batches PreparedSlice items, got {bad[0]}")
    sizes = sorted({s.size for s in batch})
    if len(sizes) > 1:
        raise DataError(f"slices of one batch must share one grid, got sizes {sizes} "
                        f"({', '.join(s.id for s in batch)})")
    return batch


def split_patients(patients, fractions=(0.6, 0.2, 0.2), seed=0) -> dict[str, list[str]]:
    """Split patient ids (never slices) into train/val/test by a seeded shuffle."""
    patients = sorted(set(patients))
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise DataError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    order = [patients[i] for i in np.random.default_rng(seed).permutation(len(patients))]
    n_train = int(round(fractions[0] * len(order)))
    n_val = int(round(fractions[1] * len(order)))
    return {
        "train": sorted(order[:n_train]),
        "val": sorted(order[n_train:n_train + n_val]),
        "test": sorted(order[n_train + n_val:]),
    }


def _size_attr(f: h5py.File, path) -> int:
    """The root attribute ``size`` (N) as a positive int, else :class:`DataError`."""
    if "size" not in f.attrs:
        raise DataError(where(path, "root attribute 'size' is missing"))
    value = _plain(f.attrs["size"])
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
        raise DataError(where(path, f"root attribute 'size' must be a positive integer, got {value!r}"))
    return int(value)


def _slice_meta(g, size: int, name: str) -> dict:
    """Metadata of one slice group, after structural checks done without reading arrays (names, dtypes,
    shapes against the file's ``size``, attribute types); :class:`DataError` ``"<file>[<id>]: ..."``."""
    if not isinstance(g, h5py.Group):
        raise DataError(where(name, "is not a group"))
    missing = [k for k in _ARRAYS if k not in g] + [a for a in _ATTRS if a not in g.attrs]
    if missing:
        raise DataError(where(name, f"slice lacks {', '.join(missing)}"))
    for k in _ARRAYS + (("acquired_mask",) if "acquired_mask" in g else ()):
        if not isinstance(g[k], h5py.Dataset):
            raise DataError(where(name, f"'{k}' is not a dataset"))
    for k in _ARRAYS:
        if g[k].dtype.kind != "c":
            raise DataError(where(name, f"{k} must be complex, got {g[k].dtype}"))
    shape = g["kspace"].shape
    if len(shape) != 3 or shape[1:] != (size, size) or shape[0] < 1:
        raise DataError(where(name, f"kspace shape {shape} does not match the file's size attribute "
                                    f"(expected (coils, {size}, {size}))"))
    if g["coil_maps"].shape != shape:
        raise DataError(where(name, f"coil_maps shape {g['coil_maps'].shape} != kspace shape {shape}"))
    if g["reference"].shape != (size, size):
        raise DataError(where(name, f"reference shape {g['reference'].shape} != ({size}, {size})"))
    if "acquired_mask" in g and g["acquired_mask"].shape != (size, size):
        raise DataError(where(name, f"acquired_mask shape {g['acquired_mask'].shape} != ({size}, {size})"))
    meta = {a: _plain(g.attrs[a]) for a in _ATTRS}
    for a in ("source_file", "contrast", "patient_id"):
        if not isinstance(meta[a], str):
            raise DataError(where(name, f"attribute '{a}' must be a string, got {meta[a]!r}"))
    if isinstance(meta["slice_index"], bool) or not isinstance(meta["slice_index"], int):
        raise DataError(where(name, f"attribute 'slice_index' must be an integer, got {meta['slice_index']!r}"))
    norm = meta["norm"]
    if isinstance(norm, bool) or not isinstance(norm, (int, float)) or not np.isfinite(norm) or norm <= 0:
        raise DataError(where(name, f"attribute 'norm' must be a positive finite number, got {norm!r}"))
    undersampled = _plain(g.attrs.get("undersampled", False))
    if not isinstance(undersampled, (bool, int)):
        raise DataError(where(name, f"attribute 'undersampled' must be true/false, got {undersampled!r}"))
    meta["undersampled"] = bool(undersampled)
    return meta


def _plain(value):
    """h5py attribute -> plain Python value."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
