"""Reconstruct one slice with any registered solver (``reconstruct``), and the bundled demo (``run_demo``).

A slice comes from a prepared HDF5 file (``format="padis-prepared"``) or a raw fastMRI file, which is prepared
on the fly into a cache. The acquisition (:mod:`padis_plugin.acquisition`) is 1-D Cartesian lines or a 2-D
Poisson-disc mask (``mask_kind``), or the slice's own mask for data acquired undersampled; the solver runs with
``torch.Generator(seed)``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from .acquisition import AcquiredMask, make_acquisition, make_problem
from .atomic import atomic_path, atomic_paths, clean_stale_temps, hdf5_file, naming, save_npy, write_json
from .data.prepared import is_prepared
from .data.source import BUNDLED_DEMO, open_source
from .errors import CheckpointError, ConfigError, DataError, where
from .acquisition.masks import acs_lines_for
from .metrics import IMAGE_METRICS, METRICS, image_metrics, to_complex_numpy
from .progress import progress_bar
from .solvers.registry import build_solver, resolved_params
from .solvers.contract import call_solver, solver_nfe
from .timing import sync

# The demo runs zero-filled, wavelet-L1 and each prior's recommended mode (padis_plugin.recommended: the best point
# estimate, deepinv's DRS with PnP(prior), unless --mode says otherwise).
DEMO_SOLVERS = ("zero-filled", "wavelet-l1", "edm", "padis")
# A temporary of ours (atomic.TEMP_PATTERN) untouched this long beside an output is a killed write's leftover
STALE_TEMP_AGE_S = 600.0
PRIOR_ENTRIES = ("padis", "edm")  # demo entries that run a prior's recommended mode


# -- data -----------------------------------------------------------------------------------------------------
def load_slice(input_path, slice_id=None, size=None, cache_dir=None):
    """The :class:`~padis_plugin.data.prepared.PreparedSlice` to reconstruct.

    ``slice_id``: for a prepared file an id (``"<stem>:<index>"``) or a position in its id list (default: the
    first); for a raw fastMRI file the slice index in the volume (default: the centre slice). ``size``: the
    N x N grid a raw file is prepared on (default: the file's own reconstruction matrix,
    :func:`~padis_plugin.data.fastmri_format.recon_matrix`); a prepared file keeps its grid.
    """
    path = Path(input_path)
    if not path.is_file():
        raise DataError(where(path, "no such file"))
    if size is None and not is_prepared(path):
        from .data.fastmri_format import recon_matrix

        size = recon_matrix(path)
    slices = "centre"  # of a raw file, unless slice_id names one
    if not is_prepared(path) and slice_id is not None:
        if not str(slice_id).lstrip("-").isdigit():
            raise ConfigError(where(path, f"raw fastMRI input: --slice must be a slice index, got {slice_id!r}"))
        slices, slice_id = int(slice_id), None  # the prepared file then holds just that slice
    ds = open_source(path, size=size, slices=slices, cache_dir=cache_dir)
    if not ds.ids:
        raise DataError(where(path, "holds no slices"))
    if slice_id is None:
        return ds[ds.ids[0]]
    if str(slice_id) in ds.ids:
        return ds[str(slice_id)]
    if str(slice_id).lstrip("-").isdigit() and -len(ds) <= int(slice_id) < len(ds):
        return ds[ds.ids[int(slice_id)]]
    raise DataError(where(path, f"no slice {slice_id!r}; ids: {', '.join(ds.ids[:8])}"
                                + (" ..." if len(ds) > 8 else "")))


def acquisition_for(slc, mask_kind="cartesian", acceleration=4.0, acs_lines=None):
    """The slice's own mask if it was acquired undersampled, else a generated ``mask_kind`` one at R."""
    return AcquiredMask(slc) if slc.undersampled else make_acquisition(mask_kind, acceleration, acs_lines)


def _problem(slc, acquisition, mask_seed, device):
    """``(y, physics, x_ref, mask)``, the mask as the (H, W) numpy array the figures draw."""
    y, physics, x_ref = make_problem(slc, acquisition, mask_seed, device)
    return y, physics, x_ref, physics.mask[0, 0].detach().cpu().numpy()


def _run(solver, y, physics, seed, device):
    gen = torch.Generator(device=device).manual_seed(int(seed))
    t0 = time.perf_counter()
    x_hat = call_solver(solver, y, physics, gen)
    sync(device)
    return x_hat.detach(), time.perf_counter() - t0, solver_nfe(solver)


# -- outputs --------------------------------------------------------------------------------------------------
def _recon_format(path) -> str:
    suffix = Path(path).suffix
    if suffix not in (".npy", ".h5", ".hdf5"):
        raise ConfigError(where(path, "output must end in .npy or .h5"))
    return "npy" if suffix == ".npy" else "h5"


def _write_recon(path, image: np.ndarray, meta: dict, fmt: str) -> None:
    if fmt == "npy":
        save_npy(path, image)
    else:
        with hdf5_file(path) as f:  # built in memory: a full disk is an OSError, not a crash in HDF5
            f.create_dataset("reconstruction", data=image)
            f.attrs["record"] = json.dumps(meta, default=str)


def save_recon(path, image: np.ndarray, meta: dict) -> Path:
    """Write a complex (H, W) image atomically: ``.npy`` (array only) or ``.h5`` (dataset ``reconstruction``
    plus attributes, and the run record as JSON in attribute ``record``)."""
    path = Path(path)
    fmt = _recon_format(path)
    with atomic_path(path) as tmp:
        _write_recon(tmp, np.asarray(image, dtype=np.complex64), meta, fmt)
    return path


def _figure(path, zero_filled, recon, reference, mask, title, label, record):
    from .bench.figures import slice_figure, unreferenced_figure

    if reference is None:
        unreferenced_figure(path, [("zero-filled", zero_filled), (label, recon)], mask,
                            title=title + " (acquired undersampled: no reference)")
        return
    zf = image_metrics(zero_filled, reference)
    slice_figure(path, reference, [("zero-filled", zero_filled, zf), (label, recon, record)], title=title, mask=mask)


# -- entry points ---------------------------------------------------------------------------------------------
def reconstruct(input_path, slice_id=None, solver=None, params=None, acceleration=4.0, seed=0,
                acs_lines=None, out=None, png=None, device="cpu", mask_seed=0, size=None, cache_dir=None,
                overwrite=True, mask_kind="cartesian", mode="best", prior="padis") -> dict:
    """Reconstruct one slice with a registered solver; returns the run record.

    :param input_path: prepared HDF5 file, or a raw fastMRI ``.h5`` (prepared on the fly into the cache at
        grid ``size``: default the file's own reconstruction matrix).
    :param slice_id: see :func:`load_slice`.
    :param str solver: registered solver name (:func:`~padis_plugin.solvers.registry.available_solvers`); None: the
        recommended ``mode`` of ``prior`` (:mod:`padis_plugin.recommended`) with the shipped prior trained for
        the slice's grid.
    :param dict params: solver parameters (unknown keys -> :class:`ConfigError`); with ``solver=None`` they
        override the recommended mode's.
    :param float acceleration: R of the mask (ignored for data acquired undersampled).
    :param int seed: seed of the solver's ``torch.Generator``.
    :param int acs_lines: fully sampled central lines of the mask (None: 24 at N = 384, scaled to N).
    :param out: ``.npy`` or ``.h5`` output (complex image), written atomically; ``None``: not saved.
    :param png: figure (reference if fully sampled, zero-filled, reconstruction, error map); ``None``: none.
        ``out`` and ``png`` are written together or not at all (temporaries, renamed when both are complete).
    :param int mask_seed: seed of the mask's random lines.
    :param bool overwrite: replace existing ``out`` / ``png`` files (False: :class:`ConfigError` up front).
    :param str mask_kind: ``cartesian`` (1-D lines, the paper's) or ``poisson`` (2-D Poisson-disc, ACS square).
    :return: dict with ``slice``, ``solver``, ``params``, ``seed``, ``mask_seed``, ``acceleration``,
        ``acs_lines``, ``sampled_fraction``, ``metrics`` (None without a reference), ``seconds``, ``nfe``,
        ``out``, ``png``; and ``mask_kind`` when it is not ``cartesian``.
    """
    fmt = _recon_format(out) if out is not None else None  # fail before the slow part
    make_acquisition(mask_kind, acceleration)  # an unknown kind fails before the slow part too
    targets = [Path(p) for p in (out, png) if p is not None]
    if len(targets) == 2 and targets[0].resolve() == targets[1].resolve():
        raise ConfigError(where(out, "out and png name the same file"))
    for target in targets:
        if target.is_dir():
            raise ConfigError(where(target, "output is a folder; give a file name"))
        if target.exists() and not overwrite:
            raise ConfigError(where(target, "exists; pass --overwrite to replace it"))
    slc = load_slice(input_path, slice_id, size=size, cache_dir=cache_dir)
    acs_lines = acs_lines_for(slc.size, acs_lines)
    y, physics, x_ref, mask = _problem(slc, acquisition_for(slc, mask_kind, acceleration, acs_lines), mask_seed,
                                       device)
    if solver is None:
        from .recommended import recommended

        solver, base = recommended(prior, mode, size=slc.size)
        params = {**base, **(params or {})}
    model = build_solver(solver, params, device, grid=slc.size)
    x_hat, seconds, nfe = _run(model, y, physics, seed, device)
    recon = to_complex_numpy(x_hat[0].cpu())
    reference = None if slc.undersampled else to_complex_numpy(x_ref[0].cpu())
    record = {"slice": slc.id, "source_file": slc.source_file, "size": slc.size, "solver": solver,
              "params": dict(params or {}),
              "seed": int(seed), "mask_seed": int(mask_seed), "acceleration": None if slc.undersampled else acceleration,
              "acs_lines": acs_lines, "sampled_fraction": float(mask.mean()),
              "metrics": image_metrics(recon, reference) if reference is not None else None,
              "seconds": seconds, "nfe": nfe, "out": str(out) if out else None, "png": str(png) if png else None}
    if mask_kind != "cartesian":  # the default's record stays as it always was
        record["mask_kind"] = mask_kind
    if not targets:
        return record
    for folder in {t.parent for t in targets}:  # temporaries of earlier killed writes of these outputs
        clean_stale_temps(folder, names=[t.name for t in targets if t.parent == folder], min_age_s=STALE_TEMP_AGE_S)
    with atomic_paths(targets) as temps:  # all outputs of this call, or none
        tmp = dict(zip(targets, temps))
        if out is not None:
            with naming(out, tmp[Path(out)]):
                _write_recon(tmp[Path(out)], np.asarray(recon, dtype=np.complex64), record, fmt)
        if png is not None:
            zero_filled = to_complex_numpy(physics.A_adjoint(y)[0].detach().cpu())
            m = record["metrics"] or {}
            with naming(png, tmp[Path(png)]):
                _figure(tmp[Path(png)], zero_filled, recon, reference, mask,
                        f"{slc.id}  R={acceleration}  seed={seed}", solver,
                        {"psnr": m.get("psnr", float("nan")), "ssim": m.get("ssim", float("nan"))})
    return record


def _demo_checkpoint(name_or_path, option):
    """Resolve a demo checkpoint; a missing shipped one fails with the file it expected."""
    from .prior.denoiser import BUNDLED_CHECKPOINTS, resolve_checkpoint

    try:
        return str(resolve_checkpoint(name_or_path))
    except CheckpointError:
        expected = BUNDLED_CHECKPOINTS / f"{name_or_path}.safetensors"
        raise CheckpointError(where(name_or_path, f"checkpoint not found: neither a file nor a shipped checkpoint "
                                                  f"(expected {expected} and its .json); pass one with {option} PATH"
                                    )) from None


def run_demo(out_dir="padis_demo_output", steps=None, inner=None, device="cpu", padis_checkpoint="padis-s25",
             edm_checkpoint="edm-s25", acceleration=4.0, acs_lines=None, seed=0, slice_id=None, solvers=DEMO_SOLVERS,
             cache_dir=None, progress=True, echo=print, mode="best") -> dict:
    """Demo: one bundled demo slice (128 x 128, 8 coils): zero-filled, wavelet-L1, and the EDM and PaDIS priors
    in their recommended ``mode`` (:mod:`padis_plugin.recommended`: ``best``, ``fast`` or ``sample``).

    ``steps`` overrides the mode's iterations (plug-and-play) or noise levels (DDS); ``inner`` is accepted for
    the command line's sake and unused by these modes. Prints PSNR / SSIM / NRMSE per solver, writes ``demo.png``
    (reconstructions and error maps), ``demo_results.json`` (``{solver: {psnr, ssim, nrmse, seconds, nfe}}``) and
    ``demo_config.json`` (the resolved settings) into ``out_dir``. Returns the results dict.
    """
    from .bench.figures import slice_figure
    from .recommended import PNP, recommended

    chosen = {"padis": padis_checkpoint, "edm": edm_checkpoint}
    runs = {}
    for entry in solvers:
        if entry in PRIOR_ENTRIES:
            name, params = recommended(entry, mode, _demo_checkpoint(chosen[entry], f"--{entry}-checkpoint"))
            key = "iterations" if name == PNP else "steps"
            if steps is not None:
                params[key] = int(steps)
            if name != PNP:
                params["progress"] = progress
            runs[entry] = (name, params)
        else:
            runs[entry] = (entry, {})
    ds = open_source(BUNDLED_DEMO, cache_dir=cache_dir, progress=progress)
    slc = ds[ds.ids[-1] if slice_id is None else slice_id]  # last bundled slice: the demo's held-out one
    acs_lines = acs_lines_for(slc.size, acs_lines)
    y, physics, x_ref, mask = _problem(slc, acquisition_for(slc, "cartesian", acceleration, acs_lines), 0, device)
    reference = to_complex_numpy(x_ref[0].cpu())
    runs = {e: (n, resolved_params(n, p, grid=slc.size)) for e, (n, p) in runs.items()}  # every setting, shown
    echo(f"demo: slice {slc.id} ({slc.size}x{slc.size}), R={acceleration}, ACS {acs_lines}, seed {seed}; "
         f"priors: {_mode_text(runs)}")
    results, panels = {}, []
    for entry in progress_bar(list(runs), desc="demo", unit="solver", enabled=progress):
        name, params = runs[entry]
        x_hat, seconds, nfe = _run(build_solver(name, params, device), y, physics, seed, device)
        recon = to_complex_numpy(x_hat[0].cpu())
        results[entry] = {**image_metrics(recon, reference), "seconds": seconds, "nfe": nfe}
        panels.append((entry, recon, results[entry]))
    echo(f"{'solver':<12} " + " ".join(f"{METRICS[k].name:>7}" for k in IMAGE_METRICS) + f" {'seconds':>8} {'NFE':>5}")
    for name, r in results.items():
        echo(f"{name:<12} " + " ".join(f"{r[k]:7.{METRICS[k].digits}f}" for k in IMAGE_METRICS)
             + f" {r['seconds']:8.1f} {r['nfe']:5d}")
    echo(_fastest_beating_wavelet(results))
    out_dir = Path(out_dir)  # the demo's own folder: its files are replaced on every run
    clean_stale_temps(out_dir, min_age_s=STALE_TEMP_AGE_S)
    slice_figure(out_dir / "demo.png", reference, panels, mask=mask,
                 title=f"{slc.id}, R={acceleration}, {_mode_text(runs)}")
    write_json(out_dir / "demo_config.json", {"slice": slc.id, "acceleration": acceleration, "acs_lines": acs_lines,
                                              "seed": seed, "mode": mode, "device": str(device),
                                              "solvers": {e: {"name": n, "params": p} for e, (n, p) in runs.items()}})
    write_json(out_dir / "demo_results.json", results)
    echo(f"wrote {out_dir / 'demo.png'} and {out_dir / 'demo_results.json'}")
    return results


def _mode_text(runs) -> str:
    parts = []
    for entry in PRIOR_ENTRIES:
        if entry in runs:
            name, p = runs[entry]
            what = (f"{p['algorithm']}-PnP, {p['iterations']} network calls" if "algorithm" in p
                    else f"{name}, {p.get('steps')} network calls")
            parts.append(f"{entry}: {what}")
    return "; ".join(parts) or "none"


def _fastest_beating_wavelet(results) -> str:
    """Which prior mode of the demo beat wavelet-L1 on this slice in the least time."""
    if "wavelet-l1" not in results:
        return "no wavelet-L1 run to compare with"
    base = results["wavelet-l1"]["psnr"]
    winners = sorted((r["seconds"], n) for n, r in results.items() if n in PRIOR_ENTRIES and r["psnr"] > base)
    if not winners:
        return f"no prior beat wavelet-L1 ({base:.2f} dB) on this slice"
    sec, name = winners[0]
    return (f"fastest prior beating wavelet-L1 ({base:.2f} dB) here: {name}, "
            f"{results[name]['psnr']:.2f} dB in {sec:.1f} s")
