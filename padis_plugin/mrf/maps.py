"""Quantitative T1 / T2 / PD maps for MR fingerprinting: from real magnitude brain slices, and from user files.

A slice is segmented into CSF / GM / WM by a 3-component Gaussian mixture on intensity (EM, numpy), plus "other"
(fat / scalp-like) for the outer scalp ring and intensity outliers. The soft posteriors are partial-volume fractions.
Relaxation is mixed per voxel through the RATES, R = sum_k f_k / T_k (the fast-exchange partial-volume
approximation); mixing rates keeps T2 < T1 whenever every tissue has T2 < T1. PD mixes linearly. Tissue values get a
per-subject factor (about 10%) and a smooth spatial variation (a few %); PD a smooth phase (up to about pi/4).
Values are clipped to the dictionary's range (:data:`T1_RANGE`, :data:`T2_RANGE`). Outside the mask T1 = T2 = PD = 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DataError, where
from .segmentation import TISSUE_NAMES, resample, square, tissue_fractions

# Literature values at 3 T: (T1 s, T2 s, PD). Literature varies by sequence (see mrf-diph-spec.md section 7).
TISSUES = {
    # T1 4.2 s: Lu et al., JMRI 22:13 (2005); T2 1.6-2 s: subarachnoid CSF about 1.9 s (T2-prepared, 3 T).
    "csf": (4.2, 1.8, 1.0),
    # T1 1.33 s: Wansapura et al., JMRI 9:531 (1999); T2 0.09 s between Wansapura (0.11 s) and Stanisz et al.,
    # MRM 54:507 (2005) (0.099 s); PD 0.8.
    "gm": (1.4, 0.09, 0.8),
    # T1 0.83 s: Wansapura 1999 (Stanisz 2005: 1.08 s); T2 0.075 s (Wansapura 0.080 s, Stanisz 0.069 s); PD 0.7.
    "wm": (0.85, 0.075, 0.7),
    # subcutaneous fat: T1 0.37 s, T2 about 0.07-0.13 s (Gold et al., AJR 183:343 (2004)); PD 1.0 as BrainWeb's fat.
    "other": (0.37, 0.1, 1.0),
}
LABELS = {"background": 0, "csf": 1, "gm": 2, "wm": 3, "other": 4}
T1_RANGE = (0.02, 5.0)                         # the dictionary's range (s): maps are clipped into it
T2_RANGE = (0.01, 4.0)
JITTER = 0.10                                  # per-subject log-normal SD of each tissue's T1 and T2
FIELD = 0.03                                   # peak relative smooth spatial variation of T1 and T2
PHASE = np.pi / 4                              # peak |phase| of PD (rad)
DEFAULT_MASK_FRACTION = 0.1                    # npz files without a mask: |pd| > 0.1 max |pd| per slice


@dataclass
class QuantitativeMaps:
    """T1, T2 (H, W) float32 seconds; PD (H, W) complex64; ``mask`` (H, W) bool: where errors are measured;
    ``tissue`` (H, W) uint8 labels (:data:`LABELS`) or None."""

    t1: np.ndarray
    t2: np.ndarray
    pd: np.ndarray
    mask: np.ndarray
    tissue: np.ndarray | None = None

    def __post_init__(self):
        shapes = {a.shape for a in (self.t1, self.t2, self.pd, self.mask, self.tissue) if a is not None}
        if len(shapes) != 1 or len(self.t1.shape) != 2:
            raise DataError(f"QuantitativeMaps: t1, t2, pd, mask, tissue must share one 2-D shape, got {shapes}")

    def _label(self, name):
        if self.tissue is None:
            raise DataError("these maps carry no tissue labels")
        return self.tissue == LABELS[name]

    csf = property(lambda self: self._label("csf"), doc="(H, W) bool: voxels labelled CSF")
    gm = property(lambda self: self._label("gm"), doc="(H, W) bool: voxels labelled grey matter")
    wm = property(lambda self: self._label("wm"), doc="(H, W) bool: voxels labelled white matter")


def draw_jitter(rng: np.random.Generator) -> np.ndarray:
    """Per-subject factors (4 tissues, 2) for (T1, T2), log-normal with SD :data:`JITTER`."""
    return np.exp(rng.normal(0.0, JITTER, size=(len(TISSUE_NAMES), 2)))


def smooth_field(shape, rng: np.random.Generator, order: int = 2) -> np.ndarray:
    """Random polynomial of total degree ``order`` on [-1, 1]^2 (H, W), scaled to peak |value| 1."""
    y, x = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    p = sum(rng.normal() * x**i * y**j for i in range(order + 1) for j in range(order + 1 - i))
    return p / max(np.abs(p).max(), 1e-12)


def maps_from_fractions(fractions: np.ndarray, rng: np.random.Generator, jitter: np.ndarray | None = None,
                        vary: bool = True) -> QuantitativeMaps:
    """Maps from partial-volume fractions (4, H, W) of (CSF, GM, WM, other); their sum is the tissue fraction
    (the rest is background). ``jitter`` (4, 2) defaults to :func:`draw_jitter`; ``vary=False`` drops the jitter,
    the smooth field and the phase (the literature values exactly)."""
    f = np.asarray(fractions, dtype=np.float64)
    total = f.sum(0)
    mask = total > 0.5
    w = f / np.maximum(total, 1e-12)
    base = np.array([TISSUES[n][:2] for n in TISSUE_NAMES])
    if vary:
        base = base * (draw_jitter(rng) if jitter is None else np.asarray(jitter))
    r1 = np.tensordot(1.0 / base[:, 0], w, 1)   # mix the rates (fast exchange), not the times
    r2 = np.tensordot(1.0 / base[:, 1], w, 1)
    t1, t2, phase = 1.0 / np.maximum(r1, 1e-12), 1.0 / np.maximum(r2, 1e-12), 0.0
    if vary:
        t1 = t1 * (1 + FIELD * smooth_field(t1.shape, rng))
        t2 = t2 * (1 + FIELD * smooth_field(t1.shape, rng))
        phase = PHASE * smooth_field(t1.shape, rng)
    t1 = np.clip(t1, *T1_RANGE)
    t2 = np.minimum(np.clip(t2, *T2_RANGE), t1)      # clipping must not invert T2 < T1 (never met in practice)
    pd = np.tensordot(np.array([TISSUES[n][2] for n in TISSUE_NAMES]), f, 1) * np.exp(1j * phase)
    tissue = np.where(mask, f.argmax(0) + 1, 0).astype(np.uint8)
    return QuantitativeMaps(np.where(mask, t1, 0).astype(np.float32), np.where(mask, t2, 0).astype(np.float32),
                            np.where(mask, pd, 0).astype(np.complex64), mask, tissue)


def maps_from_magnitude(image: np.ndarray, contrast: str, rng: np.random.Generator, *, jitter=None,
                        scalp: bool = True, size: int | None = None) -> QuantitativeMaps:
    """Quantitative maps of a magnitude slice (H, W) of ``contrast`` ('T1', 'T2', 'FLAIR'; 'T1W' etc. accepted).

    ``jitter`` (4, 2): per-subject factors (default drawn from ``rng``); ``size``: centre zero-pad to square and
    area-resize the fractions to ``size`` x ``size`` before mixing (partial volume of the native grid kept).
    """
    f = tissue_fractions(image, contrast, scalp)
    if size is not None:
        f = np.stack([resample(square(c), (size, size)) for c in f])
    return maps_from_fractions(f, rng, jitter)



# ------------------------------------------------------------------------------------------ the collection

def maps_for_split(source_h5, split_yaml, part: str, size: int = 128, seed: int = 0) -> list:
    """Maps of every slice of the patients in ``part`` ('train_pool', 'val', 'test') of ``split_yaml``.

    Reads the brain-slice collection (group ``slices/`` with attributes ``subject``, ``contrast``,
    ``skull_stripped``; slices of other contrasts than T1 / T2 / FLAIR are skipped). Each slice is centre
    zero-padded to square and area-resized to ``size`` x ``size`` (its native field of view kept, not its pixel
    size). The tissue factors are drawn once per patient from ``slice_seed(seed, "jitter:<patient>")`` and the
    smooth field and phase per slice from ``slice_seed(seed, <slice id>)``: neither depends on which other slices
    are chosen. Returns a list of (slice id, patient, :class:`QuantitativeMaps`), sorted by slice id.
    """
    import h5py

    from ..config import load_yaml
    from ..data.simulate import patient_of, slice_seed
    from .segmentation import _CONTRAST_ALIASES as _ALIASES, CONTRAST_ORDER

    split = load_yaml(split_yaml)
    if part not in ("train_pool", "val", "test") or not isinstance(split.get(part), list):
        raise ConfigError(where(split_yaml, f"no patient list {part!r} (parts: train_pool, val, test)"))
    patients = {str(p) for p in split[part]}
    out = []
    try:
        with h5py.File(source_h5, "r") as f:
            group = f.get("slices")
            if not isinstance(group, h5py.Group):
                raise DataError(where(source_h5, "no group 'slices'"))
            for name in sorted(group):
                ds = group[name]
                patient = patient_of(ds.attrs.get("subject", ""))
                contrast = str(ds.attrs.get("contrast", "")).upper()
                if patient not in patients or _ALIASES.get(contrast, contrast) not in CONTRAST_ORDER:
                    continue
                jitter = draw_jitter(np.random.default_rng(slice_seed(seed, f"jitter:{patient}")))
                maps = maps_from_magnitude(ds[()].astype(np.float32), contrast,
                                           np.random.default_rng(slice_seed(seed, name)), jitter=jitter,
                                           scalp=not bool(ds.attrs.get("skull_stripped", False)), size=size)
                out.append((name, patient, maps))
    except OSError as e:
        raise DataError(where(source_h5, f"not a readable HDF5 file: {e}")) from None
    if not out:
        raise DataError(where(source_h5, f"no T1 / T2 / FLAIR slices of the {part} patients {sorted(patients)}"))
    return out


# ------------------------------------------------------------------------------------------ user files

def _array(path, z, key) -> np.ndarray:
    try:
        a = z[key]
    except KeyError:
        raise DataError(where(path, f"missing key {key!r} (keys: {sorted(z.files)})")) from None
    except ValueError as e:  # object arrays need pickle, which we refuse
        raise DataError(where(path, f"key {key!r}: not a plain numeric array ({e})")) from None
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise DataError(where(path, f"key {key!r}: not a numeric array (dtype {a.dtype})"))
    if a.ndim not in (2, 3):
        raise DataError(where(path, f"key {key!r}: expected (H, W) or (N, H, W), got shape {a.shape}"))
    if not np.all(np.isfinite(a)):
        raise DataError(where(path, f"key {key!r}: has NaN or infinite values"))
    return a if a.ndim == 3 else a[None]


def load_maps_npz(path, matrix=None) -> list[QuantitativeMaps]:
    """Maps from an ``.npz`` with ``t1``, ``t2`` (seconds), ``pd`` (complex; real = zero phase), optional ``mask``,
    each (N, H, W) or (H, W). Without a mask: |pd| > :data:`DEFAULT_MASK_FRACTION` max |pd| per slice.

    Checked: finite values, T1, T2 > 0 and T2 <= T1 inside the mask, one shape. Values outside the mask are set to 0
    (only the mask is simulated and measured); values inside are kept as given (the dictionary covers
    :data:`T1_RANGE`, :data:`T2_RANGE`). ``matrix`` (int or (H, W)): resample each slice to it, the rates 1/T1,
    1/T2 area-weighted (shrinking) or linearly interpolated (enlarging) over the mask only (so ranges and
    T2 <= T1 are kept), PD linearly, the mask by its resampled fraction > 0.5.
    """
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(where(path, f"not a readable .npz file: {e}")) from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise DataError(where(path, "not an .npz archive (a single .npy array?); keys t1, t2, pd needed"))
    with z:
        t1, t2, pd = (_array(path, z, k) for k in ("t1", "t2", "pd"))
        has_mask, has_tissue = "mask" in z.files, "tissue" in z.files
        mask = _array(path, z, "mask") if has_mask else None
        tissue = _array(path, z, "tissue").astype(np.uint8) if has_tissue else [None] * len(t1)
    for key, a in (("t2", t2), ("pd", pd), ("mask", mask), ("tissue", tissue if has_tissue else None)):
        if a is not None and a.shape != t1.shape:
            raise DataError(where(path, f"key {key!r}: shape {a.shape} differs from t1's {t1.shape}"))
    if mask is not None and not np.all((mask == 0) | (mask == 1)):
        raise DataError(where(path, "key 'mask': values must be boolean (0 / 1)"))
    # the checks hold inside the given mask, or wherever pd is nonzero (the default mask is then narrower)
    check, where_ = (mask.astype(bool), "inside the mask") if mask is not None else (pd != 0, "where pd != 0")
    for key, a in (("t1", t1), ("t2", t2)):
        if np.any(a[check] <= 0):
            raise DataError(where(path, f"key {key!r}: {int((a[check] <= 0).sum())} value(s) <= 0 {where_}"))
    if np.any(t2[check] > t1[check]):
        raise DataError(where(path, f"key 't2': {int((t2[check] > t1[check]).sum())} voxel(s) with T2 > T1 {where_}"))
    if mask is None:
        mag = np.abs(pd)
        mask = mag > DEFAULT_MASK_FRACTION * mag.max(axis=(1, 2), keepdims=True)
    mask = mask.astype(bool)
    if not mask.any(axis=(1, 2)).all():
        raise DataError(where(path, f"key {'mask' if has_mask else 'pd'!r}: the mask of slice "
                                    f"{int(np.argmin(mask.any(axis=(1, 2))))} is empty"))
    shape = None if matrix is None else ((int(matrix),) * 2 if np.isscalar(matrix) else tuple(int(m) for m in matrix))
    return [_resampled(*a, shape) for a in zip(t1, t2, pd.astype(np.complex64), mask, tissue)]


def _resampled(t1, t2, pd, mask, tissue, shape) -> QuantitativeMaps:
    if shape is not None and shape != t1.shape:
        tissue = None  # labels are not resampled
        weight = resample(mask.astype(np.float64), shape)
        r1, r2 = (resample(np.where(mask, 1.0 / np.where(mask, t, 1), 0.0), shape) for t in (t1, t2))
        pd, mask = resample(pd, shape), weight > 0.5
        w = np.where(mask, weight, 1.0)
        t1, t2 = (np.where(mask, w / np.where(mask, r, 1.0), 0.0) for r in (r1, r2))
    return QuantitativeMaps(np.where(mask, t1, 0).astype(np.float32), np.where(mask, t2, 0).astype(np.float32),
                            np.where(mask, pd, 0).astype(np.complex64), mask.astype(bool),
                            None if tissue is None else np.where(mask, tissue, 0).astype(np.uint8))


def save_maps_npz(path, maps) -> None:
    """Write :class:`QuantitativeMaps` (one or a list of equal shape) as an ``.npz`` that
    :func:`load_maps_npz` reads (keys t1, t2, pd, mask, and tissue when every map has labels); atomic."""
    from ..atomic import atomic_path

    maps = [maps] if isinstance(maps, QuantitativeMaps) else list(maps)
    arrays = {k: np.stack([getattr(m, k) for m in maps]) for k in ("t1", "t2", "pd", "mask")}
    if all(m.tissue is not None for m in maps):
        arrays["tissue"] = np.stack([m.tissue for m in maps])
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: np.savez appends no ".npz"
        np.savez(fh, **arrays)
