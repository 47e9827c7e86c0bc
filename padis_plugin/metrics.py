"""Image quality metrics in the convention of the published PaDIS-MRI evaluation, paired differences, brain masks.

Both images are compared as magnitudes in float64; ``data_range = max|ref| - min|ref|``;
PSNR = 20 log10(data_range / sqrt(MSE)); SSIM is :func:`skimage.metrics.structural_similarity` with its
defaults (7x7 uniform window); NRMSE = ||ref - rec||_2 / ||ref||_2. No crop unless asked, no scaling fit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import binary_fill_holes
from skimage.filters import threshold_otsu
from skimage.metrics import structural_similarity

from .errors import DataError
from .kspace import center_crop


def to_complex_numpy(x) -> np.ndarray:
    """(H, W) complex128 from a complex/real numpy (H, W) array or a torch (2, H, W) / (1, 2, H, W) tensor."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.is_complex():
            x = x.squeeze(0) if x.ndim == 3 and x.shape[0] == 1 else x
            arr = x.numpy()
        else:
            if x.ndim == 4 and x.shape[0] == 1:
                x = x[0]
            if x.ndim != 3 or x.shape[0] != 2:
                raise DataError(f"image tensor must be (2, H, W) or (1, 2, H, W), got {tuple(x.shape)}")
            x = x.double()
            arr = (x[0] + 1j * x[1]).numpy()
    else:
        arr = np.asarray(x)
    if arr.ndim != 2:
        raise DataError(f"image must be 2-D (H, W), got shape {arr.shape}")
    return arr.astype(np.complex128)


def image_metrics(x_hat, reference, crop=None) -> dict[str, float] | list[dict[str, float]]:
    """PSNR (dB), SSIM and NRMSE of ``|x_hat|`` against ``|reference|`` (paper convention, float64); for a batch
    ``(B, 2, H, W)`` with B > 1 (e.g. of :func:`~padis_plugin.acquisition.batch_problems`), one dict per image."""
    if isinstance(x_hat, torch.Tensor) and x_hat.ndim == 4 and x_hat.shape[0] > 1:
        if not (isinstance(reference, torch.Tensor) and reference.shape[0] == x_hat.shape[0]):
            raise DataError(f"a batch of {x_hat.shape[0]} reconstructions needs as many references, got "
                            f"{tuple(getattr(reference, 'shape', ()))}")
        return [image_metrics(x_hat[b:b + 1], reference[b:b + 1], crop) for b in range(x_hat.shape[0])]
    rec = np.abs(to_complex_numpy(x_hat))
    ref = np.abs(to_complex_numpy(reference))
    if rec.shape != ref.shape:
        raise DataError(f"reconstruction shape {rec.shape} != reference shape {ref.shape}")
    rec, ref = center_crop(rec, crop), center_crop(ref, crop)
    data_range = float(ref.max() - ref.min())
    mse = float(np.mean((ref - rec) ** 2))
    psnr = float("inf") if mse == 0 else 20.0 * np.log10(data_range / np.sqrt(mse))
    ssim = float(structural_similarity(ref, rec, data_range=data_range))
    nrmse = float(np.linalg.norm(ref - rec) / np.linalg.norm(ref))
    return {"psnr": float(psnr), "ssim": ssim, "nrmse": nrmse}


def paired_difference(a, b) -> tuple[float, float]:
    """Mean and population SD (``np.std``) of the paired differences ``a_i - b_i`` (``pairwise.py``)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise DataError(f"paired_difference needs two equally long non-empty lists, got {a.shape} and {b.shape}")
    d = a - b
    return float(d.mean()), float(d.std())


def brain_mask(reference, clip: float | None = None) -> np.ndarray:
    """Boolean (H, W) foreground mask: Otsu threshold on ``|reference|``, holes filled.

    ``clip``: threshold ``min(|reference|, clip)`` instead; the published uncertainty-map notebook uses 1. Default
    none: unclipped, the mask does not depend on the data's normalisation constant.
    """
    mag = np.abs(to_complex_numpy(reference))
    if clip is not None:
        mag = np.minimum(mag, float(clip))
    if mag.max() == mag.min():
        return np.zeros(mag.shape, dtype=bool)
    return binary_fill_holes(mag > threshold_otsu(mag))


def pixelwise_std(recons) -> np.ndarray:
    """Population std of complex recons over the first axis, sqrt(mean_k |x_k - mean|^2): (K, H, W) -> (H, W)."""
    if isinstance(recons, torch.Tensor):
        recons = recons.detach().cpu()
        if not recons.is_complex():  # (K, 2, H, W) channel layout
            if recons.ndim != 4 or recons.shape[1] != 2:
                raise DataError(f"recons tensor must be complex (K, H, W) or (K, 2, H, W), got {tuple(recons.shape)}")
            recons = torch.complex(recons[:, 0].double(), recons[:, 1].double())
        recons = recons.numpy()
    recons = np.asarray(recons)
    if recons.ndim != 3:
        raise DataError(f"recons must be (K, H, W), got shape {recons.shape}")
    recons = recons.astype(np.complex128)
    return np.sqrt(np.mean(np.abs(recons - recons.mean(axis=0)) ** 2, axis=0))


# ------------------------------------------------------------------------------------------ metric table
@dataclass(frozen=True)
class Metric:
    """How a metric is reported: its name, decimals, which way is better and its unit."""

    name: str
    digits: int
    higher_is_better: bool
    unit: str = ""

    @property
    def title(self) -> str:
        """Column title: ``PSNR (dB)``."""
        return f"{self.name} ({self.unit})" if self.unit else self.name

    def text(self, value) -> str:
        """One value in running text: ``PSNR 31.00 dB``."""
        return f"{self.name} {value:.{self.digits}f}" + (f" {self.unit}" if self.unit else "")


#: Every metric a benchmark records, by its ``results.json`` key (tables, pairs and the study read it from here).
METRICS = {
    "psnr": Metric("PSNR", 2, True, "dB"),
    "ssim": Metric("SSIM", 3, True),
    "nrmse": Metric("NRMSE", 3, False),
    "mape_t1": Metric("T1 MAPE", 1, False, "%"),
    "mape_t2": Metric("T2 MAPE", 1, False, "%"),
    "mape_t1_wm": Metric("T1 MAPE WM", 1, False, "%"),
    "mape_t2_wm": Metric("T2 MAPE WM", 1, False, "%"),
    "mape_t1_gm": Metric("T1 MAPE GM", 1, False, "%"),
    "mape_t2_gm": Metric("T2 MAPE GM", 1, False, "%"),
    "tsmi_nrmse": Metric("TSMI NRMSE", 3, False),
    "kspace_nrmse": Metric("k-space NRMSE", 3, False),
}
IMAGE_METRICS = ("psnr", "ssim", "nrmse")       # the metrics of a reconstructed image (task ``slice``)
MRF_METRICS = ("mape_t1", "mape_t2", "mape_t1_wm", "mape_t2_wm", "mape_t1_gm", "mape_t2_gm", "tsmi_nrmse",
               "kspace_nrmse")                  # the metrics of quantitative maps (task ``mrf``)


def metrics_text(values: dict, names=IMAGE_METRICS) -> str:
    """``values`` of the metrics ``names`` in running text, from the table: ``PSNR 31.00 dB, SSIM 0.876, ...``."""
    return ", ".join(METRICS[m].text(values[m]) for m in names if m in values)


def mape(estimate, reference, mask) -> float:
    """Mean absolute percentage error of ``estimate`` against ``reference`` inside ``mask`` (NaN if empty)."""
    e, r, m = (np.asarray(a) for a in (estimate, reference, mask))
    m = m.astype(bool) & (r != 0)
    return float(np.mean(np.abs(e[m] - r[m]) / np.abs(r[m])) * 100.0) if m.any() else float("nan")


def map_metrics(t1, t2, ref_t1, ref_t2, mask, wm=None, gm=None) -> dict[str, float]:
    """T1 / T2 MAPE (%) in the tissue ``mask`` and, where given, in the white- and grey-matter masks."""
    out = {"mape_t1": mape(t1, ref_t1, mask), "mape_t2": mape(t2, ref_t2, mask)}
    for name, region in (("wm", wm), ("gm", gm)):
        inside = None if region is None else np.asarray(region, bool) & np.asarray(mask, bool)
        out[f"mape_t1_{name}"] = float("nan") if inside is None else mape(t1, ref_t1, inside)
        out[f"mape_t2_{name}"] = float("nan") if inside is None else mape(t2, ref_t2, inside)
    return out
