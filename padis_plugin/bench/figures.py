"""Figures (matplotlib, Agg backend, written atomically): per-slice reconstructions with error maps (or, without
a reference, images only), pixel-wise standard-deviation heatmaps (magma, vmin 0, as in the paper's Table 1 maps)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..atomic import atomic_path  # noqa: E402
from ..metrics import metrics_text  # noqa: E402


def _save(fig, path: Path, dpi=110):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def slice_figure(path, reference, panels, title="", mask=None, error_scale=0.25):
    """Top row: |reference| then |x_hat| of each solver (PSNR/SSIM in the title); bottom row: the
    sampling mask then ||x_hat| - |ref|| error maps on one shared scale (``error_scale`` x max|ref|).

    :param panels: list of (label, complex (H, W) recon, record with ``psnr``/``ssim``).
    """
    ref = np.abs(np.asarray(reference))
    vmax = float(np.percentile(ref, 99.5)) or float(ref.max()) or 1.0
    n = 1 + len(panels)
    fig, axes = plt.subplots(2, n, figsize=(2.4 * n, 5.0), squeeze=False)
    axes[0, 0].imshow(ref, cmap="gray", vmin=0, vmax=vmax)
    axes[0, 0].set_title("reference", fontsize=8)
    if mask is not None:
        axes[1, 0].imshow(np.asarray(mask), cmap="gray", vmin=0, vmax=1)
        axes[1, 0].set_title(f"mask ({float(np.mean(mask)):.1%})", fontsize=8)
    err_max = error_scale * float(ref.max() or 1.0)
    for j, (label, recon, rec) in enumerate(panels, start=1):
        mag = np.abs(recon)
        axes[0, j].imshow(mag, cmap="gray", vmin=0, vmax=vmax)
        axes[0, j].set_title(f"{label}\n{metrics_text(rec, ('psnr', 'ssim'))}", fontsize=8)
        im = axes[1, j].imshow(np.abs(mag - ref), cmap="inferno", vmin=0, vmax=err_max)
        axes[1, j].set_title(f"|error| (0-{err_max:.2g})", fontsize=8)
    for ax in axes.ravel():
        ax.set_axis_off()
    if panels:
        fig.colorbar(im, ax=axes[1, -1], fraction=0.046, pad=0.02)
    fig.suptitle(title, fontsize=9)
    _save(fig, Path(path))


def mrf_figure(path, reference, panels, title=""):
    """Quantitative maps: one row per map (T1, T2, |PD|) and, below each, its |error| against the reference;
    the reference in the first column, then each solver (its T1 / T2 MAPE in the title). One shared scale per
    map and per error row.

    :param reference: the reference maps (``t1``, ``t2`` seconds, ``pd`` complex, ``mask``).
    :param panels: list of (label, dict of ``t1`` / ``t2`` / ``pd`` arrays, record with ``mape_t1`` / ``mape_t2``).
    """
    mask = np.asarray(reference.mask, bool)
    rows = (("t1", "T1 (s)", np.asarray(reference.t1)), ("t2", "T2 (s)", np.asarray(reference.t2)),
            ("pd", "|PD|", np.abs(np.asarray(reference.pd))))
    n = 1 + len(panels)
    fig, axes = plt.subplots(2 * len(rows), n, figsize=(2.2 * n, 2.2 * 2 * len(rows)), squeeze=False)
    for r, (key, name, ref) in enumerate(rows):
        vmax = float(np.percentile(ref[mask], 99)) if mask.any() else float(ref.max() or 1.0)
        axes[2 * r, 0].imshow(np.where(mask, ref, 0), cmap="magma" if key != "pd" else "gray", vmin=0, vmax=vmax)
        axes[2 * r, 0].set_title(f"reference {name}", fontsize=7)
        for j, (label, maps, rec) in enumerate(panels, start=1):
            est = np.abs(np.asarray(maps[key])) if key == "pd" else np.asarray(maps[key])
            axes[2 * r, j].imshow(np.where(mask, est, 0), cmap="magma" if key != "pd" else "gray", vmin=0,
                                  vmax=vmax)
            axes[2 * r, j].set_title(f"{label}\nT1 {rec['mape_t1']:.1f}%, T2 {rec['mape_t2']:.1f}%"
                                     if r == 0 else label, fontsize=7)
            im = axes[2 * r + 1, j].imshow(np.where(mask, np.abs(est - ref), 0), cmap="inferno", vmin=0,
                                           vmax=0.5 * vmax)
            axes[2 * r + 1, j].set_title(f"|error| {name} (0-{0.5 * vmax:.2g})", fontsize=7)
        if panels:
            fig.colorbar(im, ax=axes[2 * r + 1, -1], fraction=0.046, pad=0.02)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.suptitle(title, fontsize=9)
    _save(fig, Path(path))


def unreferenced_figure(path, panels, mask, title="", vmax=None, mask_label="mask"):
    """For data without a reference (acquired undersampled): the sampling mask, then ``|image|`` of each panel
    on one grey scale; no error maps, no metrics.

    :param panels: list of (label, complex or magnitude (H, W) image).
    :param vmax: top of the grey scale (None: the 99.5th percentile of the last panel).
    """
    images = [(label, np.abs(np.asarray(image))) for label, image in panels]
    if vmax is None:
        vmax = float(np.percentile(images[-1][1], 99.5)) if images else 1.0
    fig, axes = plt.subplots(1, 1 + len(images), figsize=(2.5 * (1 + len(images)), 2.8), squeeze=False)
    axes[0, 0].imshow(np.asarray(mask), cmap="gray", vmin=0, vmax=1)
    axes[0, 0].set_title(f"{mask_label} ({float(np.mean(mask)):.1%})", fontsize=8)
    for ax, (label, image) in zip(axes[0, 1:], images):
        ax.imshow(image, cmap="gray", vmin=0, vmax=vmax or 1.0)
        ax.set_title(label, fontsize=8)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.suptitle(title, fontsize=9)
    _save(fig, Path(path))


def std_heatmap(path, std_map, title="", vmax=None):
    """Pixel-wise standard deviation map, magma colour map from 0 (``vmax`` None: the map's maximum)."""
    std_map = np.asarray(std_map)
    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    im = ax.imshow(std_map, cmap="magma", vmin=0, vmax=vmax if vmax is not None else float(std_map.max() or 1.0))
    ax.set_axis_off()
    ax.set_title(title, fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    _save(fig, Path(path))


def loss_curves(path, runs, window=100, title=""):
    """Training loss per step (faint) and its running mean over ``window`` steps, one log-scale panel per
    run (patch and whole-image losses live on different scales).

    :param runs: ``{label: (steps, losses)}``.
    """
    fig, axes = plt.subplots(1, len(runs), figsize=(3.6 * len(runs), 3.0), squeeze=False)
    for ax, (label, (steps, losses)) in zip(axes[0], runs.items()):
        steps, losses = np.asarray(steps), np.asarray(losses, dtype=float)
        w = max(1, min(window, len(losses)))
        smooth = np.convolve(losses, np.ones(w) / w, mode="valid")
        ax.plot(steps, losses, color="0.8", lw=0.5)
        ax.plot(steps[w - 1:], smooth, color="C0", lw=1.2, label=f"mean of {w} steps")
        ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(which="both", labelsize=7)
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("loss", fontsize=8)
    fig.suptitle(title, fontsize=9)
    _save(fig, Path(path))
