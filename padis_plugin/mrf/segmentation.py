"""Brain-slice segmentation into partial-volume tissue fractions, and the grid helpers of :mod:`.maps`.

Fractions are ordered :data:`TISSUE_NAMES` (CSF, GM, WM, other). Steps: a head mask (smoothed intensity threshold,
holes filled, largest component); for images with skull and scalp, a brain mask (the rest of the head is "other");
a 3-component Gaussian mixture on the brain's smoothed intensity, fitted by EM in numpy; its posteriors are the
partial-volume fractions, and voxels far from every component are "other".
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import ConfigError, DataError

TISSUE_NAMES = ("csf", "gm", "wm", "other")   # fraction index k -> tissue (label k + 1)
# Sorted mixture means (ascending intensity) -> tissues, per contrast: T1-weighted WM brightest and CSF darkest;
# T2-weighted CSF brightest; FLAIR CSF nulled (darkest) and GM above WM.
CONTRAST_ORDER = {"T1": ("csf", "gm", "wm"), "T2": ("wm", "gm", "csf"), "FLAIR": ("csf", "wm", "gm")}
# Initial means: these quantiles of the brain's intensity (the CSF end is a small tail in T1 / FLAIR).
INIT_QUANTILES = {"T1": (0.1, 0.5, 0.85), "T2": (0.15, 0.5, 0.9), "FLAIR": (0.1, 0.5, 0.85)}
# (the package's normalize_contrast imports the fastMRI reader, seconds of start-up: a small table here instead)
_CONTRAST_ALIASES = {"T1W": "T1", "T1PRE": "T1", "T1POST": "T1", "AXT1": "T1", "AXT1PRE": "T1", "AXT1POST": "T1",
                     "T2W": "T2", "AXT2": "T2", "AXFLAIR": "FLAIR"}
SMOOTH = 1.0       # Gaussian smoothing (px) of the intensity before the mixture: less noise in the classes
SD_MAX = 0.12      # largest component SD (intensity / brain's 99th percentile): a wide component would swallow
                   # the partial-volume tail and a neighbouring class (seen on this collection's T1 and T2 slices)
NO_SIGNAL = 0.05   # below this (same units): no tissue signal; left out of the fit (and of skull-stripped heads)
TRIM = 0.02        # brightest share left out of the fit: focal hyperintensities (MS lesions in FLAIR) would
                   # otherwise take a component; those far from every component become outliers
OUTLIER_Z = 4.0    # brain voxels this many SDs from every component: "other"
RING = 0.03        # outer ring always left out of the brain, as a fraction of the head's radius
BRIDGE = 0.05      # erosion radius that cuts the brain from the scalp, as a fraction of the head's radius
DARK = 0.5         # skull / background level: below this fraction of the head's median (smoothed)
KEEP = 0.1         # brain pieces at least this fraction of the largest are kept (temporal lobes, cerebellum)


def contrast_key(contrast) -> str:
    """'T1', 'T2' or 'FLAIR' for a contrast name ('T1W', 'AXT2', ... accepted); :class:`ConfigError` otherwise."""
    key = str(contrast).upper()
    key = _CONTRAST_ALIASES.get(key, key)
    if key not in CONTRAST_ORDER:
        raise ConfigError(f"contrast {contrast!r}: segmentation knows {sorted(CONTRAST_ORDER)} only")
    return key


def _pieces(mask: np.ndarray, keep: float) -> np.ndarray:
    """The connected pieces of ``mask`` at least ``keep`` times the largest (``keep = 1``: the largest only)."""
    lab, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(lab.ravel())[1:]
    return np.isin(lab, 1 + np.flatnonzero(sizes >= keep * sizes.max()))


def head_mask(image: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """(H, W) bool: smoothed intensity above 10% of its 99th percentile, holes filled, largest component."""
    s = ndimage.gaussian_filter(np.abs(np.asarray(image, dtype=np.float64)), sigma)
    head = _pieces(ndimage.binary_fill_holes(s > 0.1 * np.percentile(s, 99)), 1.0)
    if not head.any():
        raise DataError("no head found in the image (all values below the threshold)")
    return head


def brain_mask(image: np.ndarray, head: np.ndarray) -> np.ndarray:
    """(H, W) bool brain of a slice with skull and scalp: inside the head, the voxels above :data:`DARK` times the
    head's median (smoothed) are eroded by :data:`BRIDGE` of the head's radius to cut the thin links through the
    dark skull; the pieces of at least :data:`KEEP` of the largest are dilated back and their holes filled
    (ventricles); an outer ring of :data:`RING` of the radius is always left out."""
    radius = np.sqrt(head.sum() / np.pi)
    s = ndimage.gaussian_filter(image, 1.0)
    bright = head & (s > DARK * np.median(s[head]))
    r = max(1, int(round(BRIDGE * radius)))
    disk = np.hypot(*np.mgrid[-r:r + 1, -r:r + 1]) <= r
    core = _pieces(ndimage.binary_erosion(bright, disk), KEEP)
    brain = ndimage.binary_fill_holes(ndimage.binary_dilation(core, disk) & head) if core.any() else head
    return brain & (ndimage.distance_transform_edt(head) > RING * radius)


def gmm_1d(x: np.ndarray, init_quantiles=(1 / 6, 1 / 2, 5 / 6), sd_max: float = SD_MAX, iters: int = 500,
           tol: float = 1e-9, bins: int = 512):
    """3-component 1-D Gaussian mixture fitted by EM to the histogram of ``x`` (``bins`` bins: the cost does not
    grow with the voxel count); means start at ``init_quantiles`` of ``x``, SDs at 0.05 and are kept within
    [bin width, ``sd_max``]. Returns (means, sds, weights), each (3,), sorted by mean."""
    counts, edges = np.histogram(x, bins=bins)
    c, n = 0.5 * (edges[1:] + edges[:-1]), counts / counts.sum()
    mu, var, w = np.quantile(x, init_quantiles), np.full(3, 0.05**2), np.full(3, 1 / 3)
    lo = (edges[1] - edges[0]) ** 2
    last = -np.inf
    for _ in range(iters):
        logp = np.log(w) - 0.5 * np.log(2 * np.pi * var) - 0.5 * (c[:, None] - mu) ** 2 / var
        m = logp.max(1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(logp - m).sum(1))
        r = np.exp(logp - lse[:, None]) * n[:, None]          # responsibilities times the bin's share
        w = r.sum(0) + 1e-12
        mu = (r * c[:, None]).sum(0) / w
        var = np.clip((r * (c[:, None] - mu) ** 2).sum(0) / w, lo, max(sd_max**2, lo))
        ll = float(n @ lse)
        if ll - last < tol:
            break
        last = ll
    order = np.argsort(mu)
    return mu[order], np.sqrt(var[order]), w[order] / w.sum()


def tissue_fractions(image: np.ndarray, contrast: str, scalp: bool = True) -> np.ndarray:
    """Partial-volume fractions (4, H, W) of (CSF, GM, WM, other) of a magnitude slice (H, W); 0 outside the head.

    ``scalp``: the image shows skull and scalp, and what :func:`brain_mask` leaves out of the head is "other";
    ``False`` for skull-stripped images (voxels without signal are then background). Brain voxels get the
    :func:`gmm_1d` posteriors, except those more than :data:`OUTLIER_Z` SDs from every component ("other").
    """
    key = contrast_key(contrast)
    img = np.abs(np.asarray(image, dtype=np.float64))
    head = head_mask(img)
    s = ndimage.gaussian_filter(img, SMOOTH)
    s = s / max(np.percentile(s[head], 99), 1e-12)
    brain = brain_mask(img, head) if scalp else head & (s > NO_SIGNAL)
    head = head if scalp else brain
    x = s[brain]
    if np.count_nonzero(x > NO_SIGNAL) < 30:
        raise DataError(f"too few brain voxels ({np.count_nonzero(x > NO_SIGNAL)}) to segment")
    x = x / np.percentile(x, 99)
    fit = x[x > NO_SIGNAL]
    mu, sd, w = gmm_1d(fit[fit <= np.quantile(fit, 1 - TRIM)], INIT_QUANTILES[key])
    z = np.abs(x[:, None] - mu) / sd
    logp = np.log(w) - np.log(sd) - 0.5 * z**2
    post = np.exp(logp - logp.max(1, keepdims=True))
    post /= post.sum(1, keepdims=True)
    out = np.zeros((4,) + img.shape)
    out[3][head & ~brain] = 1.0
    outlier = z.min(1) > OUTLIER_Z
    for j, name in enumerate(CONTRAST_ORDER[key]):
        out[TISSUE_NAMES.index(name)][brain] = np.where(outlier, 0.0, post[:, j])
    out[3][brain] += outlier
    return out


# ------------------------------------------------------------------------------------------ resampling

def square(image: np.ndarray) -> np.ndarray:
    """Centre zero-pad (H, W) to (n, n), n = max(H, W)."""
    n = max(image.shape)
    pads = [((n - s) // 2, n - s - (n - s) // 2) for s in image.shape]
    return np.pad(image, pads)


def _axis_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) resampling along one axis: area (box overlap) weights when shrinking, linear interpolation
    at pixel centres when enlarging. Rows sum to 1."""
    if n_out <= n_in:
        edges = np.linspace(0, n_in, n_out + 1)
        lo, hi = edges[:-1, None], edges[1:, None]
        k = np.arange(n_in)[None]
        m = np.clip(np.minimum(hi, k + 1) - np.maximum(lo, k), 0, None)
    else:
        c = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        i0 = np.floor(c).astype(int)
        i1, t = np.minimum(i0 + 1, n_in - 1), c - i0
        m = np.zeros((n_out, n_in))
        np.add.at(m, (np.arange(n_out), i0), 1 - t)
        np.add.at(m, (np.arange(n_out), i1), t)
    return m / m.sum(1, keepdims=True)


def resample(image: np.ndarray, shape) -> np.ndarray:
    """(H, W) -> ``shape``, separably by :func:`_axis_matrix` (linear in the values; real or complex)."""
    if tuple(image.shape) == tuple(shape):
        return image
    return _axis_matrix(image.shape[0], shape[0]) @ image @ _axis_matrix(image.shape[1], shape[1]).T
