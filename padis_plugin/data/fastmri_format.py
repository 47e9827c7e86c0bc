"""fastMRI-format multi-coil HDF5 files: a writer, and a reader built on ``fastmri.data.SliceDataset``.

A file holds one volume of one contrast: ``kspace`` [S, C, H, W] complex64 (H = readout, W = phase
encode, as in fastMRI), ``reconstruction_rss`` [S, H', W'] float32 (RSS of the coil images, centre-cropped
to the recon matrix), the ``ismrmrd_header`` XML and the attributes ``max``, ``norm``, ``acquisition``,
``patient_id``. Both ``fastmri.data.SliceDataset`` and ``deepinv.datasets.FastMRISliceDataset`` read it.

Data acquired undersampled carries the attribute ``undersampled=True`` and its sampling pattern: a
line mask (W,) is stored as ``mask`` (the fastMRI test-set convention, understood by both loaders); a
2-D pattern (H, W), e.g. Poisson disc, is stored as ``sampling_mask`` because deepinv's default
``MRISliceTransform`` only accepts a (W,) ``mask`` and fails on a 2-D one.
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from ..atomic import atomic_path, hdf5_file
from ..errors import DataError, where
from ..kspace import rss_of_kspace

# Contrast names: raw token (fastMRI ``acquisition`` attr or a file-name token) -> normalised name.
# Longer tokens first so "AXT1POST" is not read as "AXT1"; matching is case-insensitive.
CONTRASTS = {
    "AXT1PRE": "T1PRE",
    "AXT1POST": "T1POST",
    "AXT1": "T1",
    "AXT2": "T2",
    "AXFLAIR": "FLAIR",
    "FLAIR": "FLAIR",
    "T1PRE": "T1PRE",
    "T1POST": "T1POST",
    "T1W": "T1",
    "T2W": "T2",
    "T1": "T1",
    "T2": "T2",
    "PDFS": "PDFS",
    "CORPDFS_FBK": "PDFS",
    "CORPD_FBK": "PD",
    "PD": "PD",
}
# Normalised name -> fastMRI-style ``acquisition`` attribute we write.
ACQUISITIONS = {"T1": "AXT1", "T1PRE": "AXT1PRE", "T1POST": "AXT1POST", "T2": "AXT2", "FLAIR": "AXFLAIR",
                "PD": "CORPD_FBK", "PDFS": "CORPDFS_FBK"}
UNKNOWN_CONTRAST = "UNKNOWN"
_TOKEN_ORDER = sorted(CONTRASTS, key=len, reverse=True)


def normalize_contrast(name) -> str:
    """Map an acquisition attribute or a file name to a normalised contrast ("T1", "T2", "FLAIR", ...).

    An exact token wins; otherwise the longest known token found between separators (``_ - . _``)
    in the name; ``"UNKNOWN"`` if none.
    """
    if name is None:
        return UNKNOWN_CONTRAST
    text = str(name.decode() if isinstance(name, bytes) else name).upper()
    if text in CONTRASTS:
        return CONTRASTS[text]
    tokens = set(re.split(r"[^A-Z0-9]+", text)) | set(text.split("__"))
    for token in _TOKEN_ORDER:
        if token in tokens:
            return CONTRASTS[token]
    return UNKNOWN_CONTRAST


def acquisition_for(contrast: str) -> str:
    """fastMRI-style ``acquisition`` attribute for a contrast name (the name itself if not known)."""
    return ACQUISITIONS.get(normalize_contrast(contrast), str(contrast))


# ---------------------------------------------------------------------------------------------- writing

def make_ismrmrd_header(h: int, w: int, recon_h: int | None = None, recon_w: int | None = None,
                        num_slices: int = 1) -> str:
    """Minimal ISMRMRD XML header for a Cartesian [H, W] k-space (H readout, W phase encode).

    ``fastmri.data.SliceDataset`` reads encodedSpace/reconSpace ``matrixSize`` and the
    ``kspace_encoding_step_1`` limits: centre ``w // 2`` and maximum ``w - 1`` mean "no zero padding".
    """
    recon_h = h if recon_h is None else recon_h
    recon_w = w if recon_w is None else recon_w

    def space(tag, x, y):
        return (f"<{tag}><matrixSize><x>{x}</x><y>{y}</y><z>1</z></matrixSize>"
                f"<fieldOfView_mm><x>{float(x)}</x><y>{float(y)}</y><z>1.0</z></fieldOfView_mm></{tag}>")

    def limit(tag, maximum, center):
        return f"<{tag}><minimum>0</minimum><maximum>{maximum}</maximum><center>{center}</center></{tag}>"

    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            '<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">'
            "<experimentalConditions><H1resonanceFrequency_Hz>127000000</H1resonanceFrequency_Hz>"
            "</experimentalConditions>"
            "<encoding>"
            + space("encodedSpace", h, w) + space("reconSpace", recon_h, recon_w)
            + "<encodingLimits>"
            + limit("kspace_encoding_step_1", w - 1, w // 2)
            + limit("kspace_encoding_step_2", 0, 0)
            + limit("slice", max(num_slices - 1, 0), num_slices // 2)
            + "</encodingLimits><trajectory>cartesian</trajectory></encoding></ismrmrdHeader>")


def write_fastmri_h5(path, kspace: np.ndarray, reconstruction_rss: np.ndarray | None = None,
                     acquisition: str = UNKNOWN_CONTRAST, patient_id: str = "", extra_attrs: dict | None = None,
                     mask: np.ndarray | None = None, recon_size=None, header_xml: str | None = None) -> Path:
    """Write one fastMRI-format multi-coil volume atomically; return the path.

    :param kspace: [S, C, H, W] complex k-space (stored as complex64).
    :param reconstruction_rss: [S, H', W'] target; ``None`` computes the RSS of the coil images,
        centre-cropped to ``recon_size`` if given (fastMRI crops the oversampled readout this way).
    :param mask: sampling pattern of already undersampled data, (W,) or (H, W); sets ``undersampled``.
    :param extra_attrs: more root attributes (``None`` values are skipped).
    """
    kspace = np.asarray(kspace)
    if kspace.ndim != 4 or not np.iscomplexobj(kspace):
        raise DataError(where(path, f"kspace must be complex [S, C, H, W], got {kspace.dtype} {kspace.shape}"))
    if not np.all(np.isfinite(kspace)):
        raise DataError(where(path, "kspace has non-finite values"))
    kspace = kspace.astype(np.complex64, copy=False)
    s, _, h, w = kspace.shape
    if reconstruction_rss is None:
        reconstruction_rss = rss_of_kspace(kspace, recon_size)
    target = np.asarray(reconstruction_rss, dtype=np.float32)
    if target.ndim != 3 or target.shape[0] != s:
        raise DataError(where(path, f"reconstruction_rss must be [S={s}, H, W], got {target.shape}"))
    attrs = {"max": float(target.max()), "norm": float(np.linalg.norm(target)),
             "acquisition": str(acquisition), "patient_id": str(patient_id), "undersampled": mask is not None}
    attrs.update({k: v for k, v in (extra_attrs or {}).items() if v is not None})
    header = header_xml or make_ismrmrd_header(h, w, target.shape[1], target.shape[2], num_slices=s)
    with hdf5_file(path) as f:
        f.create_dataset("kspace", data=kspace, chunks=(1,) + kspace.shape[1:])
        f.create_dataset("reconstruction_rss", data=target)
        f.create_dataset("ismrmrd_header", data=np.bytes_(header.encode()))
        if mask is not None:
            m = np.asarray(mask).astype(np.float32)
            if m.ndim == 2 and np.all(m == m[:1]):
                m = m[0]  # a line mask: store (W,) as fastMRI does
            if m.shape not in ((w,), (h, w)):
                raise DataError(where(path, f"mask must be (W,) or (H, W) = ({h}, {w}), got {m.shape}"))
            f.create_dataset("mask" if m.ndim == 1 else "sampling_mask", data=m)
        for k, v in attrs.items():
            f.attrs[k] = v
    return Path(path)


# ---------------------------------------------------------------------------------------------- reading

@dataclass
class FastMRISlice:
    """One slice of a fastMRI-format file: multi-coil k-space and where it came from."""

    kspace: np.ndarray  # (C, H, W) complex64
    source_file: str
    slice_index: int
    contrast: str
    patient_id: str
    undersampled: bool = False
    mask: np.ndarray | None = field(default=None, repr=False)  # (H, W) float32 sampling pattern


def _check_file(path: Path) -> dict:
    """Validate a file's structure with h5py (names, shapes, dtypes only); return its root attributes."""
    try:
        with h5py.File(path, "r") as f:
            if "kspace" not in f:
                raise DataError(where(path, "no 'kspace' dataset (not a fastMRI-format file)"))
            ds = f["kspace"]
            if not isinstance(ds, h5py.Dataset):
                raise DataError(where(path, "'kspace' is not a dataset"))
            if ds.ndim == 3:
                raise DataError(where(path, f"multi-coil k-space expected [S, C, H, W], got single-coil {ds.shape}"))
            if ds.ndim != 4:
                raise DataError(where(path, f"multi-coil k-space expected [S, C, H, W], got shape {ds.shape}"))
            if ds.dtype.kind != "c":
                raise DataError(where(path, f"kspace must be complex, got {ds.dtype}"))
            if ds.shape[0] == 0:
                raise DataError(where(path, "kspace has no slices"))
            _check_stored(ds, path, "kspace")
            if "ismrmrd_header" not in f:
                raise DataError(where(path, "no 'ismrmrd_header' (fastmri.data.SliceDataset needs it)"))
            attrs = dict(f.attrs)
            attrs["_num_slices"] = ds.shape[0]
            if "sampling_mask" in f:
                attrs["_sampling_mask"] = _sampling_mask(f["sampling_mask"], ds.shape[-2:], path)
            if "mask" in f and (not isinstance(f["mask"], h5py.Dataset) or f["mask"].shape != ds.shape[-1:]):
                raise DataError(where(path, f"'mask' must be a (W,) = ({ds.shape[-1]},) line mask, got "
                                            f"{getattr(f['mask'], 'shape', 'a group')}"))
            if not isinstance(f["ismrmrd_header"], h5py.Dataset):
                raise DataError(where(path, "'ismrmrd_header' must be a dataset holding the XML header, not a group"))
            undersampled = attrs.get("undersampled", False)
            if not isinstance(undersampled, (bool, np.bool_)):  # "no" would read as True
                raise DataError(where(path, f"attribute 'undersampled' must be a boolean, got {undersampled!r}"))
            return attrs
    except DataError:
        raise
    except OSError as e:
        raise DataError(where(path, f"not a readable HDF5 file (truncated or corrupt): {e}")) from None


#: a dataset may declare at most this many times the bytes it stores (compressed k-space is noise-like: far
#: below this); a few-kB file declaring gigabytes would otherwise be read as fill values, without bound
MAX_DECLARED_OVER_STORED = 64


def _check_stored(ds, path: Path, name: str) -> None:
    """DataError when ``ds`` declares far more data than the file stores for it."""
    stored = ds.id.get_storage_size()
    if ds.nbytes > MAX_DECLARED_OVER_STORED * max(stored, 1):
        raise DataError(where(path, f"'{name}' declares shape {ds.shape} ({ds.nbytes:,} bytes) but the file stores "
                                    f"{stored:,} bytes of it (truncated, or not real data)"))


def _sampling_mask(ds, grid, path: Path) -> np.ndarray:
    """The stored (H, W) sampling mask, checked against the k-space grid before it is read."""
    if not isinstance(ds, h5py.Dataset) or ds.shape != tuple(grid):
        raise DataError(where(path, f"'sampling_mask' must be an (H, W) = {tuple(grid)} dataset, got "
                                    f"{getattr(ds, 'shape', 'a group')}"))
    return np.asarray(ds, dtype=np.float32)


def _contrast(attrs: dict, path: Path) -> str:
    contrast = normalize_contrast(attrs.get("acquisition"))
    return contrast if contrast != UNKNOWN_CONTRAST else normalize_contrast(path.stem)


def _list_files(path: Path) -> list[Path]:
    if not path.exists():
        raise DataError(where(path, "no such file or folder"))
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.suffix == ".h5" and p.is_file())
    if not files:
        raise DataError(where(path, "folder holds no .h5 files"))
    return files


def _select(selection, num_slices: int, path: Path) -> list[int]:
    if isinstance(selection, str):
        if selection == "all":
            return list(range(num_slices))
        if selection in ("centre", "center", "middle"):
            return [num_slices // 2]
        raise DataError(where(path, f"slice_selection must be 'all', 'centre', an int or a list, got {selection!r}"))
    indices = [selection] if isinstance(selection, (int, np.integer)) else list(selection)
    for i in indices:
        if not -num_slices <= int(i) < num_slices:
            raise DataError(where(path, f"slice index {i} out of range for {num_slices} slices"))
    return [int(i) % num_slices for i in indices]


def _raw_transform(kspace, mask, target, attrs, fname, dataslice):
    """SliceDataset transform that hands back the raw sample untouched."""
    return kspace, mask, attrs, fname, dataslice


def _wanted_contrasts(contrasts, source) -> set[str] | None:
    """The normalised contrasts asked for; DataError naming a name that is no known contrast (it used to
    read as "UNKNOWN" and then match nothing, or every file of unknown contrast)."""
    if contrasts is None:
        return None
    unknown = [c for c in contrasts if normalize_contrast(c) == UNKNOWN_CONTRAST]
    if unknown:
        raise DataError(where(source, f"unknown contrast(s) {unknown}; known: {sorted(set(CONTRASTS.values()))}"))
    return {normalize_contrast(c) for c in contrasts}


def count_fastmri_slices(path_or_folder, slice_selection="all", contrasts=None) -> int:
    """How many slices :func:`read_fastmri_slices` yields for the same arguments (from the files' structure
    only: the total of a progress bar)."""
    wanted = _wanted_contrasts(contrasts, path_or_folder)
    total = 0
    for path in _list_files(Path(path_or_folder)):
        attrs = _check_file(path)
        if wanted is None or _contrast(attrs, path) in wanted:
            total += len(_select(slice_selection, attrs["_num_slices"], path))
    return total


def read_fastmri_slices(path_or_folder, slice_selection="all", contrasts=None) -> Iterator[FastMRISlice]:
    """Iterate over the slices of a fastMRI-format file or folder of ``.h5`` files.

    k-space is read through ``fastmri.data.SliceDataset``. Files are checked first (with h5py, structure
    only) so bad input raises :class:`DataError` naming the file instead of a loader traceback.

    :param slice_selection: ``"all"``, ``"centre"`` (the middle slice of each volume), an int or a list of
        ints (per volume, negative indices allowed).
    :param contrasts: keep only files of these contrasts (names normalised, e.g. ``["T1", "flair"]``).
    """
    from fastmri.data import SliceDataset  # heavy import (pandas, lightning): only when reading

    wanted = _wanted_contrasts(contrasts, path_or_folder)
    chosen = []  # (path, attrs, contrast)
    for path in _list_files(Path(path_or_folder)):
        attrs = _check_file(path)
        contrast = _contrast(attrs, path)
        if wanted is None or contrast in wanted:
            chosen.append((path, attrs, contrast))
    if not chosen:
        raise DataError(where(path_or_folder, f"no file of contrast(s) {sorted(wanted)}"))

    # SliceDataset scans every entry of a folder: give it a private folder linking only the files we checked.
    with tempfile.TemporaryDirectory(prefix="padis_fastmri_") as tmp:
        by_name = {}
        for i, (path, attrs, contrast) in enumerate(chosen):
            name = f"{i:05d}_{path.name}"
            os.symlink(path.resolve(), Path(tmp) / name)
            by_name[name] = (path, attrs, contrast)
        try:
            dataset = SliceDataset(tmp, challenge="multicoil", transform=_raw_transform)
        except (RuntimeError, ValueError, SyntaxError, OSError) as e:  # lxml XMLSyntaxError is a SyntaxError
            bad = [p for p, a, c in chosen if not _header_ok(p)]
            raise DataError(where(bad[0] if bad else path_or_folder, f"bad ismrmrd_header: {e}")) from None
        index = {}
        for i, (fname, dataslice, _) in enumerate(dataset.raw_samples):
            index[(Path(fname).name, dataslice)] = i
        for name, (path, attrs, contrast) in by_name.items():
            for s in _select(slice_selection, attrs["_num_slices"], path):
                try:
                    kspace, mask, _, _, _ = dataset[index[(name, s)]]
                except (OSError, KeyError, ValueError) as e:
                    raise DataError(where(path, f"cannot read slice {s}: {e}")) from None
                if not np.all(np.isfinite(kspace)):
                    raise DataError(where(path, f"slice {s}: kspace has non-finite values"))
                h, w = kspace.shape[-2:]
                if "_sampling_mask" in attrs:
                    mask = attrs["_sampling_mask"]
                elif mask is not None:
                    mask = np.broadcast_to(np.asarray(mask, dtype=np.float32).reshape(-1)[None, :], (h, w)).copy()
                yield FastMRISlice(
                    kspace=np.asarray(kspace, dtype=np.complex64), source_file=str(path), slice_index=s,
                    contrast=contrast, patient_id=str(attrs.get("patient_id", path.stem)),
                    undersampled=bool(attrs.get("undersampled", False)), mask=mask)


def recon_matrix(path) -> int:
    """The reconstruction grid of a fastMRI file: the side of its header's ``reconSpace`` matrix (the image
    fastMRI's own ``reconstruction_rss`` is given on, readout oversampling removed; the larger side if not
    square), read through fastmri's header parser. :class:`DataError` when the header has none."""
    from fastmri.data import SliceDataset

    path = Path(path)
    _check_file(path)
    try:
        metadata, _ = SliceDataset._retrieve_metadata(None, path)
        x, y = metadata["recon_size"][:2]
    except Exception as e:  # lxml, KeyError, ValueError: the header lacks the field or is not XML
        raise DataError(where(path, f"cannot read the reconstruction matrix from ismrmrd_header ({e})")) from None
    if min(x, y) < 1:
        raise DataError(where(path, f"ismrmrd_header reconSpace matrix {x} x {y} is empty"))
    return int(max(x, y))


def _header_ok(path: Path) -> bool:
    """Whether ``fastmri`` can parse the file's header (used only to name the culprit file)."""
    from fastmri.data import SliceDataset

    try:
        SliceDataset._retrieve_metadata(None, path)
        return True
    except Exception:
        return False
