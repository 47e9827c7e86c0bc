r"""Data preparation of PaDIS-MRI (as in the published code): raw multi-coil k-space -> prepared N x N slices.

Per slice (:func:`prepare_slice`):

1. coil images by the centred orthonormal inverse FFT;
2. grid: readout (H) centre-cropped to N, phase encode (W) centre zero-padded or cropped to N, both in the
   image domain (``sigpy.resize`` semantics, DC ends at index N//2);
3. noise prewhitening from a background corner (BART ``whiten``): covariance
   :math:`\Sigma = \frac{1}{n-1}\sum_k n_k n_k^H` (no mean subtraction), :math:`\Sigma = LL^H`,
   every pixel's coil vector :math:`x \leftarrow L^{-1}x`;
4. k-space resynthesised on the N x N grid;
5. ESPIRiT maps (sigpy, calibration 24, kernel 6, threshold :math:`\sqrt{0.001}`, no crop);
6. reference image: 30 iterations of CG-SENSE on the fully sampled data;
7. normalisation: divide by the 99th percentile of the RSS of the ACS x ACS low-pass of :math:`S_c x`.

Instead of re-running ESPIRiT and CG-SENSE on the normalised k-space (as the published scripts do), maps are
kept and the reference is divided by the constant: ESPIRiT is scale-invariant (relative SVD threshold,
power iteration started from ones, unit-norm eigenvectors) and CG started from zero is homogeneous of
degree one in the data, so this equals recomputation up to float rounding at half the cost.

Already undersampled data (``mask`` given): the grid change is done in k-space (centred crop / zero-pad of
k-space and mask), because image-domain resampling would smear the sampling pattern; maps come from the
fully sampled calibration centre; the reference is CG-SENSE of the undersampled data.

:func:`prepare` runs this over a fastMRI file or folder and writes one prepared HDF5 file; ESPIRiT maps and
CG-SENSE images are cached on disk (``.npz``, no pickle) keyed by a hash of the input and the options.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import sigpy as sp
import sigpy.mri
from scipy.linalg import solve_triangular

from ..atomic import atomic_path
from ..errors import DataError, PadisError, where
from ..kspace import calibration_width, fft2c, ifft2c, rss
from ..mask_check import check_mask
from .prepared import PreparedSlice, write_prepared

ESPIRIT_THRESH = math.sqrt(0.001)  # BART ecalib -t 0.001 is on squared singular values; sigpy's is linear
CACHE_VERSION = 1


class BackgroundSignalWarning(UserWarning):
    """The noise-estimation corner seems to hold signal, so prewhitening may be wrong."""


#: the largest grid N a slice is prepared on: MRI matrices are at most 512 or so; 100,000 would ask for
#: terabytes before anything could fail cleanly
MAX_SIZE = 2048

@dataclass(frozen=True)
class PrepareOptions:
    """Options of :func:`prepare_slice` (recorded in the prepared file's ``params``)."""

    size: int = 384
    noise_region: tuple[int, int] = (30, 30)
    whiten: bool | None = None          # None: whiten fully sampled data only (corner of aliased data is not noise)
    acs: int = 24                        # ESPIRiT calibration width
    norm_acs: int | None = None          # ACS block of the normalisation constant (None: same as ``acs``)
    kernel_width: int = 6
    thresh: float = ESPIRIT_THRESH
    espirit_iters: int = 100
    cg_iters: int = 30
    signal_ratio: float = 0.1            # warn when corner RMS RSS > signal_ratio * 99th percentile RSS

    def __post_init__(self):
        region = self.noise_region
        region = (int(region), int(region)) if np.isscalar(region) else tuple(int(r) for r in region)
        object.__setattr__(self, "noise_region", region)
        if not 8 <= self.size <= MAX_SIZE:
            raise DataError(f"size must be in [8, {MAX_SIZE}], got {self.size} (slices become size x size)")
        if not 1 <= self.cg_iters <= 10_000:
            raise DataError(f"cg_iters must be in [1, 10000], got {self.cg_iters}")
        if len(region) != 2 or min(region) < 1:
            raise DataError(f"noise_region must be one or two positive integers, got {self.noise_region}")
        if not 2 < self.kernel_width < self.acs <= self.size:
            raise DataError(f"need kernel_width ({self.kernel_width}) < acs ({self.acs}) <= size ({self.size})")
        if self.norm_acs is not None and not 0 < self.norm_acs <= self.size:
            raise DataError(f"norm_acs must be in [1, size], got {self.norm_acs}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["noise_region"] = list(self.noise_region)
        return d


# ----------------------------------------------------------------------------------------------------------
# building blocks

def noise_covariance(noise: np.ndarray) -> np.ndarray:
    """Coil noise covariance of samples ``(C, ...)``: :math:`\\frac{1}{n-1}\\sum_k n_k n_k^H`, no mean removed."""
    n = noise.reshape(noise.shape[0], -1).astype(np.complex128)
    return n @ n.conj().T / max(n.shape[1] - 1, 1)


def whitening_matrix(cov: np.ndarray, name="<array>") -> np.ndarray:
    """:math:`W = L^{-1}` with :math:`\\Sigma = LL^H` (lower-triangular Cholesky factor)."""
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise DataError(where(name, "noise covariance of the background region is not positive definite "
                                    "(no noise there?); prepare with whiten=False")) from None
    return solve_triangular(chol, np.eye(len(cov)), lower=True)


def apply_coil_matrix(matrix: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Mix coils pixel by pixel: ``out[i] = sum_j matrix[i, j] data[j]`` (commutes with the FFT)."""
    return np.einsum("ij,j...->i...", matrix.astype(data.dtype), data)


def background_signal_ratio(images: np.ndarray, region) -> float:
    """RMS of the coil RSS in the top-left ``region`` over the 99th percentile of the RSS of the image.

    For background noise this is small (about 0.03 at 30 dB SNR with 8 coils); tissue in the corner
    brings it to the order of 0.1-1.
    """
    image = rss(images)
    corner = image[: region[0], : region[1]]
    top = np.percentile(image, 99)
    return float(np.sqrt(np.mean(corner ** 2)) / top) if top > 0 else 0.0


def espirit_maps(kspace: np.ndarray, calib_width=24, kernel_width=6, thresh=ESPIRIT_THRESH, max_iter=100):
    """One set of ESPIRiT maps (sigpy ``EspiritCalib``, crop 0: maps kept everywhere, unit RSS per pixel)."""
    maps = sigpy.mri.app.EspiritCalib(
        kspace, calib_width=calib_width, kernel_width=kernel_width, thresh=thresh, crop=0.0,
        max_iter=max_iter, show_pbar=False,
    ).run()
    # sigpy references phase to coil 0; a zero there gives NaN: such pixels have no usable map
    return np.nan_to_num(maps).astype(np.complex64)


def cg_sense(kspace: np.ndarray, maps: np.ndarray, mask: np.ndarray | None = None, iters=30) -> np.ndarray:
    """CG-SENSE image (no regulariser, ``iters`` CG iterations on the normal equations, started at zero)."""
    weights = 1.0 if mask is None else mask.astype(np.float32)
    x = sigpy.mri.app.SenseRecon(kspace, maps, lamda=0, weights=weights, max_iter=iters, show_pbar=False).run()
    return np.asarray(x).astype(np.complex64)


def normalisation_constant(reference: np.ndarray, maps: np.ndarray, acs=24) -> float:
    """99th percentile of the RSS of the central ACS x ACS k-space block of the coil images ``S_c x``."""
    k = fft2c(maps * reference)
    low = sp.resize(sp.resize(k, (len(k), acs, acs)), k.shape)
    return float(np.percentile(rss(ifft2c(low)), 99))


# ----------------------------------------------------------------------------------------------------------
# one slice

def _grid_fully_sampled(kspace, opts: PrepareOptions, name):
    """Readout crop, whitening, phase-encode pad/crop in the image domain; returns N x N k-space."""
    c, h, w = kspace.shape
    n = opts.size
    img = ifft2c(kspace)
    img = sp.resize(img, (c, min(h, n), w))  # readout crop (pad later if short, so the corner stays data)
    if opts.whiten is not False:
        img = apply_coil_matrix(_whitening_from_corner(img, opts, name), img)
    img = sp.resize(img, (c, n, n))
    return fft2c(img).astype(np.complex64)


def _whitening_from_corner(img, opts: PrepareOptions, name):
    """Whitening matrix from the coil images' top-left corner; warn if that corner looks like signal."""
    rows, cols = opts.noise_region
    if rows > img.shape[-2] or cols > img.shape[-1]:
        raise DataError(where(name, f"noise region {rows}x{cols} larger than the image {img.shape[-2:]}"))
    ratio = background_signal_ratio(img, (rows, cols))
    if ratio > opts.signal_ratio:
        warnings.warn(
            f"{name}: the {rows}x{cols} noise corner holds signal (its RMS is {ratio:.2f} of the 99th-percentile "
            f"coil RSS, threshold {opts.signal_ratio}); prewhitening may be wrong (use whiten=False or another "
            "noise_region)", BackgroundSignalWarning, stacklevel=3)
    return whitening_matrix(noise_covariance(img[:, :rows, :cols]), name)


def prepare_slice(kspace, size=384, *, mask=None, undersampled=False, noise_region=(30, 30), whiten=None,
                  acs=24, norm_acs=None, kernel_width=6, thresh=ESPIRIT_THRESH, espirit_iters=100, cg_iters=30,
                  signal_ratio=0.1,
                  slice_id="slice:0", source_file="<array>", slice_index=0, contrast="", patient_id="",
                  cache_dir=None) -> PreparedSlice:
    """Prepare one raw k-space slice ``(C, H, W)`` complex into a normalised :class:`PreparedSlice`.

    :param mask: ``(H, W)`` (or broadcastable) sampling mask of an already undersampled acquisition, or None
        for fully sampled data.
    :param undersampled: the data is undersampled; without ``mask`` its non-zero samples define the mask.
    :param whiten: prewhiten from the ``noise_region`` corner; None whitens fully sampled data only.
    :param cache_dir: folder caching maps and CG-SENSE images (None: no cache).
    """
    opts = PrepareOptions(size=size, noise_region=noise_region, whiten=whiten, acs=acs, norm_acs=norm_acs,
                          kernel_width=kernel_width, thresh=thresh, espirit_iters=espirit_iters,
                          cg_iters=cg_iters, signal_ratio=signal_ratio)
    name = f"{source_file}[{slice_index}]"
    kspace = _check_kspace(kspace, name)
    n = opts.size
    if undersampled and mask is None:
        mask = np.sum(np.abs(kspace), axis=0) > 0
    if mask is None:
        ksp = _grid_fully_sampled(kspace, opts, name)
        grid_mask, calib = None, opts.acs
    else:
        check_mask(mask, name)
        try:
            mask = np.broadcast_to(np.asarray(mask) > 0, kspace.shape[-2:])
        except ValueError:
            raise DataError(where(name, f"mask shape {np.shape(mask)} does not fit k-space {kspace.shape}")) from None
        kspace = kspace * mask
        if opts.whiten:  # coil mixing commutes with the FFT: whiten the acquired samples directly
            kspace = apply_coil_matrix(_whitening_from_corner(ifft2c(kspace), opts, name), kspace)
        ksp = sp.resize(kspace, (len(kspace), n, n)).astype(np.complex64)
        grid_mask = sp.resize(mask.astype(np.float32), (n, n))
        width = calibration_width(grid_mask)
        calib = min(opts.acs, width - width % 2)  # even widths only, as prepare has always calibrated
        if calib <= opts.kernel_width:
            raise DataError(where(name, f"undersampled data has a fully sampled centre of only {calib} samples; "
                                        f"ESPIRiT needs more than kernel_width={opts.kernel_width}"))
    maps, reference = _maps_and_reference(ksp, grid_mask, calib, opts, kspace, cache_dir)
    norm = normalisation_constant(reference, maps, opts.norm_acs or opts.acs)
    if not np.isfinite(norm) or norm <= 0:
        raise DataError(where(name, f"normalisation constant is {norm} (empty image?)"))
    return PreparedSlice(
        id=slice_id, kspace=(ksp / norm).astype(np.complex64), coil_maps=maps,
        reference=(reference / norm).astype(np.complex64), norm=norm, source_file=str(source_file),
        slice_index=int(slice_index), contrast=str(contrast), patient_id=str(patient_id),
        undersampled=grid_mask is not None, acquired_mask=grid_mask,
    )


def _check_kspace(kspace, name) -> np.ndarray:
    kspace = np.asarray(kspace)
    if kspace.ndim != 3:
        raise DataError(where(name, f"k-space must be (coils, H, W), got shape {kspace.shape}"))
    if min(kspace.shape) < 1:
        raise DataError(where(name, f"k-space is empty, shape {kspace.shape}"))
    if not np.isfinite(kspace).all():
        raise DataError(where(name, "k-space holds non-finite values"))
    return kspace.astype(np.complex64)


def _maps_and_reference(ksp, mask, calib, opts: PrepareOptions, raw, cache_dir):
    """ESPIRiT maps and CG-SENSE image of un-normalised ``ksp``, served from the cache when possible."""
    path = None
    if cache_dir is not None:
        key = hashlib.sha256()
        key.update(hashlib.sha256(np.ascontiguousarray(raw).tobytes()).digest())
        key.update(json.dumps({"v": CACHE_VERSION, "shape": raw.shape, "calib": calib, **opts.to_dict()},
                              sort_keys=True).encode())
        if mask is not None:
            key.update(np.packbits(mask > 0).tobytes())
        path = Path(cache_dir) / f"espirit-{key.hexdigest()[:32]}.npz"
        cached = _load_cache(path, ksp.shape)
        if cached is not None:
            return cached
    maps = espirit_maps(ksp, calib, opts.kernel_width, opts.thresh, opts.espirit_iters)
    empty = float((np.sqrt((np.abs(maps) ** 2).sum(axis=0)) < 1e-3).mean())
    if empty > 0.9:  # too narrow a calibration block: ESPIRiT finds no sensitivity and every solver sees nothing
        raise DataError(f"ESPIRiT found no coil sensitivities from a {calib}-line calibration block (maps zero "
                        f"on {empty:.0%} of the image): use a wider --acs")
    reference = cg_sense(ksp, maps, mask, opts.cg_iters)
    if path is not None:
        try:
            with atomic_path(path, suffix=".npz") as tmp:
                np.savez(tmp, coil_maps=maps, reference=reference)
        except OSError as exc:  # a read-only cache must not stop preparation
            warnings.warn(f"{path}: cannot write map cache ({exc})", stacklevel=2)
    return maps, reference


def _load_cache(path: Path, shape):
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            maps, reference = z["coil_maps"], z["reference"]
    except Exception:  # corrupt or partial cache entry: recompute and overwrite
        return None
    if maps.shape != shape or reference.shape != shape[1:]:
        return None
    return maps, reference


def default_cache_dir() -> Path:
    """``$PADIS_CACHE`` or ``~/.cache/padis_plugin``."""
    return Path(os.environ.get("PADIS_CACHE") or Path.home() / ".cache" / "padis_plugin")


# ----------------------------------------------------------------------------------------------------------
# files

def prepare(src, out, size=384, slices="centre", contrasts=None, seed=0, cache_dir=None, cache=True,
            progress=True, params=None, **options) -> Path:
    """Prepare the slices of a fastMRI file or folder into one prepared HDF5 file ``out`` (written atomically).

    :param slices: ``"centre"``, ``"all"``, a slice index or a list of indices (per volume).
    :param contrasts: keep only these contrasts (case-insensitive), None for all.
    :param seed: recorded; preparation itself is deterministic.
    :param cache_dir: map cache folder (default :func:`default_cache_dir`); ``cache=False`` disables it.
    :param params: extra entries recorded in the file's ``params``.
    :param options: :func:`prepare_slice` options (``noise_region``, ``whiten``, ``acs``, ...).
    :return: ``out`` as a :class:`~pathlib.Path`.
    """
    from ..progress import progress_bar
    from .fastmri_format import count_fastmri_slices, read_fastmri_slices  # imported late: this module stays light

    src, out = Path(src), Path(out)
    if not src.exists():
        raise DataError(where(src, "no such file or folder"))
    if out.is_dir():
        raise DataError(where(out, "output must be a file path, not a folder"))
    opts = PrepareOptions(size=size, **options)  # validate before the slow part
    cache_path = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "maps" if cache else None
    prepared, sources = [], set()
    try:
        items = read_fastmri_slices(src, slice_selection=slices, contrasts=contrasts)
        total = count_fastmri_slices(src, slice_selection=slices, contrasts=contrasts) if progress else None
        for item in progress_bar(items, total=total, desc="prepare", unit="slice", enabled=progress):
            stem = Path(item.source_file).stem
            sources.add(Path(item.source_file).name)
            prepared.append(prepare_slice(
                item.kspace, size, mask=item.mask if item.undersampled else None, undersampled=item.undersampled,
                slice_id=f"{stem}:{item.slice_index}", source_file=Path(item.source_file).name,
                slice_index=item.slice_index, contrast=item.contrast, patient_id=item.patient_id,
                cache_dir=cache_path, **{k: v for k, v in opts.to_dict().items() if k != "size"}))
    except PadisError:
        raise
    except (OSError, KeyError) as exc:  # loader errors on truncated / foreign files the reader did not catch
        raise DataError(where(src, f"cannot read k-space ({type(exc).__name__}: {exc})")) from None
    if not prepared:
        raise DataError(where(src, f"no slices selected (slices={slices!r}, contrasts={contrasts})"))
    if not isinstance(slices, str):
        slices = int(slices) if np.isscalar(slices) else [int(i) for i in slices]
    record = {"size": size, "slices": slices, "contrasts": contrasts, "seed": seed,
              "sources": sorted(sources), **opts.to_dict(), **(params or {})}
    return write_prepared(out, prepared, record)
