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

from ..atomic import atomic_path
from ..errors import DataError, where

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
    """Check ranks, shapes and finiteness; raise :class:`DataError` naming ``path`` and the slice."""
    name = f"{path}[{slc.id}]"
    if slc.kspace.ndim != 3:
        raise DataError(where(name, f"kspace must be (coils, N, N), got shape {slc.kspace.shape}"))
    c, h, w = slc.kspace.shape
    if h != w:
        raise DataError(where(name, f"kspace must be on a square N x N grid, got {h} x {w}"))
    if slc.coil_maps.shape != slc.kspace.shape:
        raise DataError(where(name, f"coil_maps shape {slc.coil_maps.shape} != kspace shape {slc.kspace.shape}"))
    if slc.reference.shape != (h, w):
        raise DataError(where(name, f"reference shape {slc.reference.shape} != ({h}, {w})"))
    if slc.acquired_mask is not None and slc.acquired_mask.shape[-2:] != (h, w):
        raise DataError(where(name, f"acquired_mask shape {slc.acquired_mask.shape} does not match ({h}, {w})"))
    for key in _ARRAYS:
        if not np.isfinite(getattr(slc, key)).all():
            raise DataError(where(name, f"{key} holds non-finite values"))
    if not np.isfinite(slc.norm) or slc.norm <= 0:
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
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
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
            self.size = int(f.attrs["size"])
            self.params = json.loads(f.attrs.get("params", "{}"))
            self._meta = {}
            for key, g in f["slices"].items():
                missing = [k for k in _ARRAYS if k not in g] + [a for a in _ATTRS if a not in g.attrs]
                if missing:
                    raise DataError(where(self.path, f"slice '{key}' lacks {', '.join(missing)}"))
                self._meta[key] = {a: _plain(g.attrs[a]) for a in _ATTRS}
                self._meta[key]["undersampled"] = bool(g.attrs.get("undersampled", False))
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
        return slc

    def patients(self) -> list[str]:
        return sorted({self._meta[k]["patient_id"] for k in self.ids})

    def meta(self) -> list[dict]:
        return [{"id": k, **self._meta[k]} for k in self.ids]


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


def _plain(value):
    """h5py attribute -> plain Python value."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
