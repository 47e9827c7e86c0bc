"""Training images: a seeded subset of S slices of a prepared file, as one (S, 2, N, N) tensor, or of S images
of an image-array file (:mod:`.image_arrays`), as one (S, C, N, N) tensor (C real channels, C even).

The published code trains on the CG-SENSE reference of the fully sampled data (``x_est_gt``); here that is
:attr:`PreparedSlice.reference`, as the (real, imaginary) channels of :mod:`padis_plugin.prior.channels`. The
subset draws patients first and one slice per patient (so S slices come from S subjects whenever the pool has
that many), then, only if S exceeds the number of patients, further slices uniformly from the rest. Everything
follows from one recorded seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError, where
from ..data.source import open_source
from .image_arrays import is_image_arrays, read_image_arrays


def select_subset(meta: list[dict], num_slices: int | None, seed: int, one_per_patient: bool = True) -> list[str]:
    """Choose ``num_slices`` slice ids from ``meta`` (items with ``id`` and ``patient_id``), deterministically.

    With ``one_per_patient``: shuffle the patients with ``numpy.random.default_rng(seed)``, take the first
    ``min(S, #patients)`` and one random slice of each; if ``S`` is larger, draw the remaining slices uniformly
    without replacement from the unused ones. Without it: S slices uniformly without replacement.
    ``num_slices=None`` keeps everything. Returns the chosen ids sorted.
    """
    ids = sorted(m["id"] for m in meta)
    if num_slices is None:
        return ids
    if num_slices < 1 or num_slices > len(ids):
        raise ConfigError(f"data.num_slices: asked for {num_slices} slices but the pool holds {len(ids)}")
    rng = np.random.default_rng(seed)
    if not one_per_patient:
        return sorted(ids[i] for i in rng.choice(len(ids), size=num_slices, replace=False))
    by_patient: dict[str, list[str]] = {}
    for m in sorted(meta, key=lambda m: m["id"]):
        by_patient.setdefault(str(m["patient_id"]), []).append(m["id"])
    patients = sorted(by_patient)
    order = [patients[i] for i in rng.permutation(len(patients))]
    chosen = [by_patient[p][rng.integers(len(by_patient[p]))] for p in order[:num_slices]]
    if num_slices > len(chosen):
        rest = sorted(set(ids) - set(chosen))
        chosen += [rest[i] for i in rng.choice(len(rest), size=num_slices - len(chosen), replace=False)]
    return sorted(chosen)


@dataclass
class TrainingImages:
    """The training set held in memory: ``images`` (S, C, N, N) float32 (C = 2 for MRI slices: real, imag) and
    its provenance."""

    images: torch.Tensor
    ids: list[str]
    patients: list[str]
    path: str
    seed: int
    meta: list[dict] = field(default_factory=list, repr=False)

    def provenance(self) -> dict:
        """JSON-ready record of where the images came from (stored in every checkpoint)."""
        return {"path": self.path, "ids": list(self.ids), "patients": list(self.patients), "seed": self.seed,
                "num_slices": len(self.ids), "grid": int(self.images.shape[-1])}  # solvers warn on another grid


def load_training_images(path, num_slices: int | None = None, seed: int = 0, patients=None, contrasts=None,
                         one_per_patient: bool = True) -> TrainingImages:
    """Load a seeded subset of the fully sampled slices of a prepared file, or of the images of an image-array
    file (see :func:`select_subset`).

    ``patients`` restricts the pool to a training split; ``contrasts`` (e.g. ``["T2"]``) to some contrasts (prepared
    files only). Slices acquired undersampled have no reference image and are never used.
    """
    if is_image_arrays(path):
        return _load_image_arrays(Path(path), num_slices, seed, patients, contrasts, one_per_patient)
    dataset = open_source(path, size=None, contrasts=contrasts, patients=patients)  # prepared data or the demo
    path = dataset.path
    pool = [m for m in dataset.meta() if not m["undersampled"]]
    if not pool:
        raise DataError(where(path, f"no fully sampled slices match contrasts={contrasts} patients="
                                    f"{'all' if patients is None else len(patients)}"))
    ids = _subset(path, pool, num_slices, seed, one_per_patient)
    slices = [dataset[i] for i in ids]
    ref = np.stack([s.reference for s in slices])
    images = torch.from_numpy(np.stack([ref.real, ref.imag], axis=1).astype(np.float32))
    meta = [s.meta() for s in slices]
    return TrainingImages(images=images, ids=ids, patients=sorted({m["patient_id"] for m in meta}),
                          path=str(path.resolve()), seed=seed, meta=meta)


def _subset(path, pool: list[dict], num_slices, seed: int, one_per_patient: bool) -> list[str]:
    try:
        return select_subset(pool, num_slices, seed, one_per_patient)
    except ConfigError as exc:
        raise ConfigError(where(path, str(exc))) from None


def _load_image_arrays(path: Path, num_slices, seed, patients, contrasts, one_per_patient) -> TrainingImages:
    """:func:`load_training_images` of an image-array file: ids and subjects are the file's (:mod:`.image_arrays`)."""
    if contrasts is not None:
        raise ConfigError(where(path, "'data.contrasts' selects slices of prepared MRI files; an image-array file "
                                      "has no contrasts (set it to null)"))
    arrays = read_image_arrays(path)
    wanted = None if patients is None else {str(p) for p in patients}
    pool = [{"id": i, "patient_id": p} for i, p in zip(arrays.ids, arrays.patient_ids) if wanted is None or p in wanted]
    if not pool:
        raise DataError(where(path, f"no images of the {len(wanted)} patients data.patients names"))
    ids = _subset(path, pool, num_slices, seed, one_per_patient)
    row, chosen = {i: k for k, i in enumerate(arrays.ids)}, set(ids)
    meta = sorted((m for m in pool if m["id"] in chosen), key=lambda m: m["id"])
    images = torch.from_numpy(arrays.images[[row[i] for i in ids]])
    return TrainingImages(images=images, ids=ids, patients=sorted({m["patient_id"] for m in meta}),
                          path=str(path.resolve()), seed=seed, meta=meta)
