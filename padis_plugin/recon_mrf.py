"""``padis-recon FILE.h5`` for an MR-fingerprinting file (``padis-simulate --mrf``): one item -> T1 / T2 / PD maps
(``.npz``) and their figure, with their errors where the file holds reference maps."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_paths
from .bench.figures import mrf_figure
from .errors import ConfigError, DataError, where
from .metrics import map_metrics
from .solvers.contract import call_solver, solver_nfe
from .solvers.registry import build_solver, solver_task

DEFAULT_SOLVER = "mrf-diph"     # the recommended MRF mode (its default prior: the shipped mrf-edm-s)


def is_mrf_file(path) -> bool:
    """Whether ``path`` is an HDF5 file of the ``padis-mrf-1`` format (False for anything else)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return str(f.attrs.get("format", "")).startswith("padis-mrf")
    except (OSError, ValueError):
        return False


def reconstruct_mrf(path, item=None, solver=None, params=None, out=None, png=None, seed: int = 0, device="cpu",
                    overwrite: bool = False) -> dict:
    """Maps of one item of an MRF file (``item``: id or position; default the first) with ``solver``
    (default :data:`DEFAULT_SOLVER`). ``out``: ``.npz`` with ``t1``, ``t2`` (s) and complex ``pd``; ``png``: the
    figure. Returns the solver, item, metrics (T1 / T2 MAPE against the file's reference maps), seconds, nfe."""
    from .mrf.files import MRFFile
    from .mrf.matching import match_image

    name = solver or DEFAULT_SOLVER
    if solver_task(name) != "mrf":
        raise ConfigError(f"{path}: an MR-fingerprinting file needs an MRF solver (mrf-diph, mrf-admm-dm, "
                          f"mrf-cg-dm, mrf-svd-dm), got '{name}'")
    if out is not None and Path(out).suffix != ".npz":
        raise ConfigError(f"--out {out}: the maps of an MRF file are written as .npz")
    f = MRFFile(path)
    if item is None:
        item = f.ids[0]
    elif item not in f.ids:
        try:
            item = f.ids[int(item)]
        except (ValueError, IndexError):
            raise DataError(where(path, f"no item {item!r} (the file holds {len(f.ids)}: {f.ids[:3]} ...)")) \
                from None
    problem = f.problem(item, device)
    solver_obj = build_solver(name, params or {}, device)
    t0 = time.perf_counter()
    z = call_solver(solver_obj, problem.y, problem.physics, torch.Generator(device=device).manual_seed(seed))
    seconds = time.perf_counter() - t0
    est = match_image(problem.physics.dictionary, z.detach()[0])
    maps = {"t1": est.t1.cpu().numpy().astype(np.float32), "t2": est.t2.cpu().numpy().astype(np.float32),
            "pd": est.pd.cpu().numpy().astype(np.complex64)}
    ref = problem.info.extra["maps"]
    metrics = map_metrics(maps["t1"], maps["t2"], ref.t1, ref.t2, ref.mask,
                          ref.wm if ref.tissue is not None else None, ref.gm if ref.tissue is not None else None)
    targets = [p for p in (out, png) if p is not None]
    with atomic_paths(targets) as tmps:  # written together or not at all
        tmp = dict(zip(targets, tmps))
        if out is not None:
            with open(tmp[out], "wb") as fh:
                np.savez(fh, **maps)
        if png is not None:
            mrf_figure(tmp[png], ref, [(name, maps, metrics)], title=f"{item}  {name}")
    return {"solver": name, "item": item, "metrics": metrics, "seconds": seconds, "nfe": solver_nfe(solver_obj),
            "params": params or {}}
