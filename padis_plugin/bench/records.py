"""Records of finished benchmark work, as stored in the partial files and ``results.json``.

A record's fields, in order, are the keys of its ``results.json`` row; a partial-file line is the same row
after ``kind`` and ``key``. The order is the file format: do not reorder fields.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import ClassVar

from .items import item_key, uncertainty_key
from ..errors import DataError, where


class _Row:
    kind: ClassVar[str]

    def row(self) -> dict:
        """The ``results.json`` row: every field in order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_json(self) -> dict:
        """The partial-file line: ``kind`` and ``key``, then the row."""
        return {"kind": self.kind, "key": self.key, **self.row()}


@dataclass(frozen=True)
class Record(_Row):
    """One finished item (slice, solver, R, mask seed): its metrics, timing and provenance."""

    id: str
    contrast: str
    patient: str | None
    solver: str                          # the label
    name: str                            # the registered solver name
    training_size: int | None
    R: float
    seed: int                            # mask seed
    acs_lines: int | None                # the scan's fully sampled centre (None: given masks)
    generator_seed: int
    psnr: float | None                   # None: the item failed (``error``)
    ssim: float | None
    nrmse: float | None
    seconds: float
    nfe: int | None
    achieved_R: float | None = None      # the mask's R where it only approximates R (Poisson-disc)
    reused_from: str | None = None       # results folder it was taken from (``output.reuse_from``)
    error: str | None = None             # why the solver failed on this item (it diverged, overflowed, ...)

    kind: ClassVar[str] = "item"
    _OMITTED_WHEN_NONE: ClassVar[tuple] = ("achieved_R", "reused_from", "error")  # absent, not null: rows as before

    @property
    def key(self) -> str:
        return item_key(self.id, self.solver, self.R, self.seed)

    def row(self) -> dict:
        row = super().row()
        for name in self._OMITTED_WHEN_NONE:
            if row[name] is None:
                del row[name]
        return row

    def relabelled(self, label: str, training_size: int | None, folder: str) -> "Record":
        """This record taken over from results ``folder`` under this config's ``label``."""
        return dataclasses.replace(self, solver=label, training_size=training_size, reused_from=folder)


@dataclass(frozen=True)
class UncertaintyRecord(_Row):
    """Pixel-wise SD over the uncertainty masks of one (slice, solver, R): in-brain means and the map's path."""

    id: str
    contrast: str
    patient: str | None
    solver: str
    training_size: int | None
    R: float
    seeds: list[int]
    mean_std_brain: float
    mean_cv_brain: float
    brain_pixels: int
    map: str                             # the SD map's .npy, relative to the results folder

    kind: ClassVar[str] = "uncertainty"

    @property
    def key(self) -> str:
        return uncertainty_key(self.id, self.solver, self.R)


@dataclass(frozen=True)
class MRFRecord(_Row):
    """One finished MR-fingerprinting item (slice, solver): map errors (``METRICS`` of the ``mrf`` task),
    timing and provenance."""

    id: str
    contrast: str
    patient: str | None
    solver: str
    name: str
    generator_seed: int
    mape_t1: float | None                # None: the item failed (``error``)
    mape_t2: float | None
    mape_t1_wm: float | None
    mape_t2_wm: float | None
    mape_t1_gm: float | None
    mape_t2_gm: float | None
    tsmi_nrmse: float | None
    kspace_nrmse: float | None
    seconds: float
    nfe: int | None
    reused_from: str | None = None
    error: str | None = None             # why the solver failed on this item

    kind: ClassVar[str] = "mrf"

    def row(self) -> dict:
        row = super().row()
        if row["error"] is None:  # absent, not null: rows stay as before
            del row["error"]
        return row

    @property
    def key(self) -> str:
        return mrf_key(self.id, self.solver)

    def relabelled(self, label: str, training_size: int | None, folder: str) -> "MRFRecord":
        return dataclasses.replace(self, solver=label, reused_from=folder)


def mrf_key(slice_id: str, label: str) -> str:
    """The key of an MR-fingerprinting item: one per (slice, solver)."""
    return f"mrf|{slice_id}|{label}"


_KINDS = {cls.kind: cls for cls in (Record, UncertaintyRecord, MRFRecord)}


def from_json(obj: dict, source=None) -> Record | UncertaintyRecord | MRFRecord:
    """The record of a partial-file line (its ``kind`` chooses the class); DataError naming ``source``
    when the line is no record of this format."""
    cls = _KINDS.get(obj.get("kind"))
    try:
        if cls is None:
            raise TypeError(f"unknown kind {obj.get('kind')!r}")
        return cls(**{k: v for k, v in obj.items() if k not in ("kind", "key")})
    except TypeError as exc:
        raise DataError(where(source, f"record {obj.get('key')!r} is not a benchmark record ({exc})")) from None
