"""Multi-coil k-space simulation from real magnitude images, written as fastMRI-format files.

Model of one slice: ``x = resize(|m|) * exp(i phi)``, coil images ``x_c = S_c x`` with birdcage maps
``S`` (unit root-sum-of-squares), ``y_c = F x_c + n_c`` with ``F`` the centred orthonormal 2-D FFT.

SNR definition: ``snr_db = 20 log10(s / sigma)`` where ``s`` is the mean of ``|x_c|`` over all coils and
the object pixels (magnitude above 10% of its 99th percentile) of the noiseless coil images, and
``sigma`` the standard deviation of the complex noise per sample (``E|n|^2 = sigma^2``). The FFT is
orthonormal, so ``sigma`` is the same in k-space and in the coil images.

With ``noise_correlation = rho > 0`` the noise has the coil covariance ``sigma^2 Sigma``, ``Sigma`` unit
diagonal with ``Sigma_cd = rho exp(i(theta_c - theta_d))`` (seeded random phases), positive definite for
``0 <= rho < 1``: prewhitening can then be tested against a known covariance.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..errors import ConfigError, DataError, where
from ..kspace import fft2c, rss, rss_of_kspace
from .fastmri_format import acquisition_for, normalize_contrast, write_fastmri_h5
from .files import safe_name

_STUDY_SUFFIX = re.compile(r"__study\d+$")


def slice_seed(seed: int, key: str) -> int:
    """Stable seed for one item: ``seed`` mixed with a hash of ``key`` (blake2b, not Python's ``hash``)."""
    digest = hashlib.blake2b(f"{int(seed)}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def patient_of(subject: str) -> str:
    """Patient id of a subject key: ``"patient12__study1"`` -> ``"patient12"`` (studies of one person)."""
    return _STUDY_SUFFIX.sub("", str(subject))


@functools.lru_cache(maxsize=8)
def birdcage_coil_maps(coils: int, shape, r: float = 1.5) -> np.ndarray:
    """Birdcage coil maps (C, H, W) complex64 from ``sigpy.mri.birdcage_maps``, normalised to unit RSS.

    Cached per (coils, shape, r); the returned array is read-only.
    """
    from sigpy.mri import birdcage_maps

    maps = birdcage_maps((coils,) + tuple(shape), r=r, nzz=coils)
    maps = (maps / rss(maps, axis=0)).astype(np.complex64)
    maps.flags.writeable = False
    return maps


def smooth_phase(shape, rng: np.random.Generator, order: int = 2, scale: float = np.pi) -> np.ndarray:
    """Smooth random background phase (H, W): a polynomial of total degree ``order`` on [-1, 1]^2."""
    y, x = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    phase = np.full(shape, rng.uniform(-np.pi, np.pi))
    for i in range(order + 1):
        for j in range(order + 1 - i):
            if i + j > 0:
                phase += rng.normal(0, scale / (i + j + 1)) * x**i * y**j
    return phase


def coil_noise_correlation(coils: int, correlation: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-diagonal Hermitian coil noise correlation matrix with off-diagonal magnitude ``correlation``."""
    if not 0.0 <= correlation < 1.0:
        raise DataError(f"noise_correlation must be in [0, 1), got {correlation}")
    u = np.exp(1j * rng.uniform(-np.pi, np.pi, coils))
    return (1 - correlation) * np.eye(coils) + correlation * np.outer(u, u.conj())


def object_mask(image: np.ndarray) -> np.ndarray:
    """Pixels of the object: magnitude above 10% of its 99th percentile (used by the SNR definition)."""
    mag = np.abs(image)
    return mag > 0.1 * np.percentile(mag, 99)


def _as_shape(matrix):
    if matrix is None:
        return None
    return (int(matrix), int(matrix)) if np.isscalar(matrix) else tuple(int(m) for m in matrix)


def _resize(image: np.ndarray, shape) -> np.ndarray:
    if shape is None or tuple(image.shape) == tuple(shape):
        return image
    from skimage.transform import resize

    return resize(image, shape, order=1, anti_aliasing=True, preserve_range=True)


def to_physical_grid(image: np.ndarray, pixel_spacing_mm, spacing_mm: float, matrix) -> np.ndarray:
    """Resample ``image`` to square ``spacing_mm`` pixels (anti-aliased linear), then centre zero-pad or crop
    it to ``matrix``: every slice gets the same pixel size and field of view (``matrix * spacing_mm``),
    instead of being stretched to the matrix whatever its field of view."""
    shape = _as_shape(matrix)
    if shape is None:
        raise DataError("a physical grid (spacing_mm) needs a matrix")
    spacing = np.broadcast_to(np.asarray(pixel_spacing_mm, dtype=np.float64), (2,))
    if not (np.all(np.isfinite(spacing)) and np.all(spacing > 0)):
        raise DataError(f"pixel spacing must be positive and finite, got {tuple(spacing)} mm")
    resampled = np.round(np.asarray(image.shape) * spacing / float(spacing_mm)).astype(int)
    image = _resize(np.asarray(image, dtype=np.float64), tuple(int(max(n, 2)) for n in resampled))
    out = np.zeros(shape, dtype=image.dtype)
    src = [slice(max(0, (n - m) // 2), max(0, (n - m) // 2) + min(n, m)) for n, m in zip(image.shape, shape)]
    dst = [slice(max(0, (m - n) // 2), max(0, (m - n) // 2) + min(n, m)) for n, m in zip(image.shape, shape)]
    out[tuple(dst)] = image[tuple(src)]
    return out


def check_snr_db(snr_db, source=None) -> float | None:
    """``snr_db`` as a float (``None`` and ``+inf`` mean noiseless); NaN, ``-inf`` and non-numbers are refused."""
    if snr_db is None:
        return None
    try:
        if isinstance(snr_db, (bool, str)):
            raise TypeError
        value = float(snr_db)
    except (TypeError, ValueError):
        raise ConfigError(where(source, f"snr_db must be a number in dB (or None/inf for noiseless), "
                                        f"got {snr_db!r}")) from None
    if np.isnan(value) or value == -np.inf:
        raise ConfigError(where(source, f"snr_db must be a finite number in dB, or inf / None for noiseless "
                                        f"data, got {value}"))
    return value


def simulate_slice(image: np.ndarray, coils: int = 8, snr_db: float | None = 30.0, matrix=None,
                   readout_oversampling: int = 1, noise_correlation: float = 0.0, seed: int = 0,
                   noise_correlation_matrix: np.ndarray | None = None, return_sigma: bool = False):
    """Simulate multi-coil k-space (C, H', W') complex64 of one real magnitude image (H, W).

    :param matrix: resize the image to this matrix (int or (H, W)) first, anti-aliased.
    :param snr_db: SNR as defined in the module docstring; ``None`` or ``inf`` gives noiseless data.
    :param readout_oversampling: zero-pad the image along the readout (H) axis by this factor before
        the FFT, like fastMRI's 2x oversampled readout (H' = factor * H).
    :param noise_correlation: off-diagonal coil noise correlation (0 = independent coils).
    :param noise_correlation_matrix: a given (C, C) correlation matrix (overrides ``noise_correlation``).
    :param return_sigma: also return the noise standard deviation ``sigma``.
    """
    snr_db = check_snr_db(snr_db)
    image = np.abs(np.asarray(image, dtype=np.float64))
    if image.ndim != 2:
        raise DataError(f"simulate_slice needs a 2-D image, got shape {image.shape}")
    image = _resize(image, _as_shape(matrix))
    rng_phase, rng_noise, rng_cov = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    x = image * np.exp(1j * smooth_phase(image.shape, rng_phase))
    coil_images = birdcage_coil_maps(coils, tuple(image.shape)) * x
    h = image.shape[0]
    if readout_oversampling > 1:
        pad = (readout_oversampling - 1) * h
        coil_images = np.pad(coil_images, ((0, 0), (pad // 2, pad - pad // 2), (0, 0)))
    kspace = fft2c(coil_images)

    sigma = 0.0
    if snr_db is not None and np.isfinite(snr_db):
        signal = np.mean(np.abs(birdcage_coil_maps(coils, tuple(image.shape)) * image)[:, object_mask(image)])
        sigma = signal / 10 ** (snr_db / 20)
        z = (rng_noise.standard_normal(kspace.shape) + 1j * rng_noise.standard_normal(kspace.shape)) / np.sqrt(2)
        corr = noise_correlation_matrix
        if corr is None and noise_correlation > 0:
            corr = coil_noise_correlation(coils, noise_correlation, rng_cov)
        if corr is not None:
            z = np.einsum("cd,d...->c...", np.linalg.cholesky(corr), z)
        kspace = kspace + sigma * z
    kspace = kspace.astype(np.complex64)
    return (kspace, float(sigma)) if return_sigma else kspace


def simulate_subject(images, coils: int = 8, snr_db: float | None = 30.0, seeds=None, matrix=None,
                     readout_oversampling: int = 1, noise_correlation: float = 0.0, seed: int = 0):
    """Simulate a volume [S, C, H, W] from a list of magnitude images (resized to the first's shape
    or to ``matrix``); one noise correlation matrix for the whole volume. Returns (kspace, sigmas, corr)."""
    shape = _as_shape(matrix) or np.shape(images[0])
    seeds = [slice_seed(seed, str(i)) for i in range(len(images))] if seeds is None else seeds
    corr = None
    if noise_correlation > 0:
        corr = coil_noise_correlation(coils, noise_correlation, np.random.default_rng(slice_seed(seed, "noise")))
    out = [simulate_slice(im, coils, snr_db, shape, readout_oversampling, seed=s, noise_correlation_matrix=corr,
                          return_sigma=True) for im, s in zip(images, seeds)]
    return np.stack([k for k, _ in out]), [s for _, s in out], corr


# ------------------------------------------------------------------------------------------ source files

@dataclass
class SourceSlice:
    """One real magnitude slice to simulate from."""

    key: str
    image: np.ndarray
    subject: str
    contrast: str
    slice_index: int
    pixel_spacing_mm: tuple | None = None


def _check_image(path, key, image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2 or min(image.shape) < 2:
        raise DataError(where(path, f"{key}: expected a 2-D image, got shape {image.shape}"))
    if not np.issubdtype(image.dtype, np.number):
        raise DataError(where(path, f"{key}: not a numeric image ({image.dtype})"))
    image = np.abs(image).astype(np.float32)
    if not np.all(np.isfinite(image)):
        raise DataError(where(path, f"{key}: image has non-finite values"))
    return image


def _stack_slices(path, stack, subject, contrast, prefix) -> list[SourceSlice]:
    stack = np.asarray(stack)
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3:
        raise DataError(where(path, f"expected a (S, H, W) stack of images, got shape {stack.shape}"))
    return [SourceSlice(f"{prefix}:{i}", _check_image(path, f"{prefix}[{i}]", im), subject, contrast, i)
            for i, im in enumerate(stack)]


def load_source_slices(src, subject: str | None = None, contrast: str | None = None,
                       dataset: str | None = None) -> list[SourceSlice]:
    """Read magnitude slices from an HDF5 file with a ``slices/`` group (attrs ``subject``, ``contrast``,
    ``slice_index``), or from one HDF5 dataset / ``.npy`` stack (S, H, W) (``subject`` defaults to the
    file stem and ``contrast`` to a contrast token found in it)."""
    path = Path(src)
    if not path.is_file():
        raise DataError(where(path, "no such file"))
    subject = subject or path.stem
    contrast = normalize_contrast(contrast or path.stem)
    if path.suffix == ".npy":
        try:
            stack = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise DataError(where(path, f"not a readable .npy array: {e}")) from None
        return _stack_slices(path, stack, subject, contrast, path.stem)
    try:
        with h5py.File(path, "r") as f:
            if dataset is None and isinstance(f.get("slices"), h5py.Group):
                out = []
                for name, ds in f["slices"].items():
                    missing = [a for a in ("subject", "contrast", "slice_index") if a not in ds.attrs]
                    if missing:
                        raise DataError(where(path, f"slices/{name}: missing attribute(s) {missing}"))
                    spacing = ds.attrs.get("pixel_spacing_mm")
                    out.append(SourceSlice(name, _check_image(path, f"slices/{name}", ds[()]),
                                           str(ds.attrs["subject"]), normalize_contrast(ds.attrs["contrast"]),
                                           int(ds.attrs["slice_index"]),
                                           None if spacing is None else tuple(np.broadcast_to(
                                               np.asarray(spacing, dtype=float), (2,)).tolist())))
                if not out:
                    raise DataError(where(path, "group 'slices' is empty"))
                return out
            if dataset is None:
                names = []
                f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and o.ndim in (2, 3) else None)
                if len(names) != 1:
                    raise DataError(where(path, f"no 'slices' group and {len(names)} 2-D/3-D datasets "
                                                f"({', '.join(names[:5])}): name one with dataset="))
                dataset = names[0]
            if dataset not in f or not isinstance(f[dataset], h5py.Dataset):
                raise DataError(where(path, f"no dataset {dataset!r}"))
            return _stack_slices(path, f[dataset][()], subject, contrast, f"{path.stem}/{dataset}")
    except DataError:
        raise
    except OSError as e:
        raise DataError(where(path, f"not a readable HDF5 file (truncated or corrupt): {e}")) from None


def simulate_files(src, out_dir, coils: int = 8, snr_db: float | None = 30.0, matrix=None, seed: int = 0,
                   subjects=None, contrasts=None, progress: bool = True, readout_oversampling: int = 1,
                   noise_correlation: float = 0.0, subject: str | None = None, contrast: str | None = None,
                   dataset: str | None = None, spacing_mm: float | None = None) -> list[Path]:
    """Simulate fastMRI-format files ``<subject>_<contrast>.h5`` (one volume per subject and contrast).

    With ``spacing_mm``, every slice is first resampled to that pixel size from its ``pixel_spacing_mm``
    attribute and centre padded / cropped to ``matrix`` (``to_physical_grid``); without it, each slice is
    resized to ``matrix`` whatever its field of view.

    ``patient_id`` is the subject without a ``__studyK`` suffix, so splits by patient keep studies of one
    person together. Every slice's noise and phase come from ``slice_seed(seed, <slice key>)``: the output
    does not depend on which other subjects are simulated. ``subjects`` matches subject or patient id.
    All input is read and checked before anything is written.
    """
    from ..progress import progress_bar

    snr_db = check_snr_db(snr_db)
    slices = load_source_slices(src, subject=subject, contrast=contrast, dataset=dataset)
    wanted_c = None if contrasts is None else {normalize_contrast(c) for c in contrasts}
    wanted_s = None if subjects is None else {str(s) for s in subjects}
    groups = defaultdict(list)
    for s in slices:
        if wanted_c is not None and s.contrast not in wanted_c:
            continue
        if wanted_s is not None and s.subject not in wanted_s and patient_of(s.subject) not in wanted_s:
            continue
        groups[(s.subject, s.contrast)].append(s)
    if not groups:
        raise DataError(where(src, f"no slices match subjects={subjects} contrasts={contrasts}"))
    if spacing_mm is not None:
        if matrix is None:
            raise DataError(where(src, "spacing_mm needs a matrix (the grid to pad or crop to)"))
        if not (np.isfinite(spacing_mm) and spacing_mm > 0):
            raise DataError(where(src, f"spacing_mm must be positive, got {spacing_mm}"))
        no_spacing = [s.key for g in groups.values() for s in g if s.pixel_spacing_mm is None]
        if no_spacing:
            raise DataError(where(src, f"{len(no_spacing)} slice(s) have no pixel_spacing_mm attribute "
                                       f"(e.g. {no_spacing[0]}), needed for spacing_mm"))

    out_dir = Path(out_dir)
    written = []
    for (subj, con), group in progress_bar(sorted(groups.items()), desc="simulate", unit="volume", enabled=progress):
        group.sort(key=lambda s: (s.slice_index, s.key))
        vol_key = f"{subj}/{con}"
        images = [s.image if spacing_mm is None else to_physical_grid(s.image, s.pixel_spacing_mm, spacing_mm, matrix)
                  for s in group]
        kspace, sigmas, corr = simulate_subject(
            images, coils=coils, snr_db=snr_db, matrix=matrix,
            seeds=[slice_seed(seed, s.key) for s in group], readout_oversampling=readout_oversampling,
            noise_correlation=noise_correlation, seed=slice_seed(seed, vol_key))
        recon_size = (kspace.shape[-2] // max(readout_oversampling, 1), kspace.shape[-1])
        target = rss_of_kspace(kspace, recon_size)
        attrs = {
            "simulated": True, "subject": subj, "contrast": con, "seed": int(seed), "coils": int(coils),
            "snr_db": float(snr_db) if snr_db is not None else float("inf"), "noise_std": np.asarray(sigmas),
            "readout_oversampling": int(readout_oversampling), "noise_correlation": float(noise_correlation),
            "noise_correlation_matrix": corr.astype(np.complex64) if corr is not None else None,
            "source_file": str(src), "source_slice_index": np.asarray([s.slice_index for s in group]),
            "source_keys": json.dumps([s.key for s in group]),
            "spacing_mm": float(spacing_mm) if spacing_mm is not None else None,
        }
        path = out_dir / f"{safe_name(subj)}_{safe_name(con)}.h5"
        written.append(write_fastmri_h5(path, kspace, target, acquisition=acquisition_for(con),
                                        patient_id=patient_of(subj), extra_attrs=attrs))
    return written
