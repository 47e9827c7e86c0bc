"""Ingest real raw multi-coil k-space from a ``.npy`` array into a fastMRI-format file.

Orientation: fastMRI stores k-space as [S, C, H, W] with H the readout (frequency encode, ``kx``) and W
the phase encode (``ky``), so an input with axes ``coil,ky,kx`` is transposed to (C, kx, ky). For data
undersampled in both directions (e.g. Poisson disc) this is a convention only; it is recorded in the
attribute ``axes_in`` so the orientation can be traced back.

Already undersampled data gets ``undersampled=True``, its sampling pattern (non-zero samples in any coil)
as the mask, and a zero-filled RSS as ``reconstruction_rss`` with the attribute
``reconstruction_is_ground_truth=False``: never score a reconstruction against it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError, where
from ..kspace import calibration_width
from .files import load_npy
from .fastmri_format import write_fastmri_h5

_AXES = {"coil", "ky", "kx"}


def _parse_axes(axes: str, ndim: int, path) -> list[str]:
    names = [a.strip().lower() for a in axes.split(",")]
    if set(names) - {"slice"} != _AXES or len(set(names)) != len(names) or len(names) != ndim:
        raise DataError(where(path, f"axes {axes!r} must name each of coil, ky, kx (and optionally slice) "
                                    f"once, one per array axis ({ndim})"))
    return names


def ingest_npy_kspace(npy_path, out_h5, patient_id: str, acquisition: str, axes: str = "coil,ky,kx") -> Path:
    """Convert a raw complex k-space ``.npy`` (default axes (C, ky, kx)) to a fastMRI-format ``.h5``.

    :param axes: comma-separated names of the input axes among ``coil``, ``ky``, ``kx`` and optionally
        ``slice``; output is [S, C, kx, ky] (H = readout).
    :return: the written path.
    """
    path = Path(npy_path)
    ksp = load_npy(path, "k-space")
    if not np.iscomplexobj(ksp):
        raise DataError(where(path, f"k-space must be complex, got {ksp.dtype}"))
    if ksp.ndim == 2:
        raise DataError(where(path, f"multi-coil k-space expected, got a 2-D array {ksp.shape}"))
    names = _parse_axes(axes, ksp.ndim, path)
    if "slice" not in names:
        ksp, names = ksp[None], ["slice"] + names
    ksp = np.transpose(ksp, [names.index(a) for a in ("slice", "coil", "kx", "ky")])
    if not np.all(np.isfinite(ksp)):
        raise DataError(where(path, "k-space has non-finite values"))
    sampled = np.any(ksp != 0, axis=(0, 1))  # one pattern for the volume: (H, W)
    if not sampled.any():
        raise DataError(where(path, "k-space is all zeros"))
    attrs = {
        "reconstruction_is_ground_truth": False,
        "source_file": str(path), "axes_in": axes,
        "sampled_fraction": float(sampled.mean()), "calibration_size": calibration_width(sampled),
    }
    return write_fastmri_h5(out_h5, ksp.astype(np.complex64), None, acquisition=acquisition,
                            patient_id=patient_id, extra_attrs=attrs, mask=sampled)
