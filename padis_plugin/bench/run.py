"""Benchmark runner: config -> (slices x accelerations x mask seeds x solvers) -> metrics, tables, figures.

:func:`run_benchmark` checks everything it can (config, solvers, dataset, acquisitions, the output folder's previous
config) before the first file is written, then runs every item not yet finished (:mod:`.items`: one
item is (slice id, solver label, R, mask seed)) and records it in the results folder
(:class:`~.store.ResultStore`: resume after an interruption, reuse of items a changed config computes
identically, ``output.reuse_from``); each slice's figures and uncertainty maps follow its items.

Under ``torchrun --nproc_per_node=K`` the slices are sharded round-robin (rank r takes slices r::K, one
GPU each on CUDA); every rank writes its own partial file and rank 0 merges them after a barrier.

Each solver call gets a ``torch.Generator`` seeded by a stable hash of (global seed, slice id, R, mask
seed): the same across solvers, processes, restarts and world sizes.
"""
from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from ..acquisition import Problem, make_problem
from .build import build_solvers
from .acquisitions import AcquisitionBank
from ..atomic import write_npy
from .items import Item, config_hash, generator_seed, item_key, plan, uncertainty_key, uncertainty_labels
from .records import Record, UncertaintyRecord
from .runtime import RunGuard, barrier, environment, join_ranks, resolve_device
from .store import ResultStore, reference_path
from .weights import run_records
from .config import BenchConfig
from ..config import config_error, from_dict, load_yaml, overridden, problems_of
from ..data.files import load_npy
from ..data.prepared import PreparedDataset
from ..data.source import prepared_path
from ..errors import ConfigError, DataError, where
from ..metrics import brain_mask, center_crop, image_metrics, pixelwise_std, to_complex_numpy
from ..solvers.base import SamplerDivergedError
from ..solvers.contract import call_solver, solver_nfe
from ..timing import sync
from . import figures
from ..progress import progress_bar
from ..ranks import require_same


# ------------------------------------------------------------------------------------------ config
def load_bench_config(path, overrides=(), out=None) -> BenchConfig:
    """Load a benchmark YAML with ``--set`` overrides (and ``--out``), all keys and types checked."""
    cfg = from_dict(BenchConfig, overridden(BenchConfig, load_yaml(path), overrides, path), source=path)
    if out is not None:
        cfg.output.dir = str(out)
    return cfg


# -------------------------------------------------------------------------------------------- data
def open_dataset(cfg: BenchConfig, path) -> PreparedDataset:
    """The filtered dataset (contrasts / patients / ids, fully sampled slices only, first max_slices)."""
    data = cfg.data
    ds = PreparedDataset(path, contrasts=data.contrasts, patients=data.patients, ids=data.ids)
    meta = {m["id"]: m for m in ds.meta()}
    skipped = [i for i in ds.ids if meta[i]["undersampled"]]
    if skipped:
        warnings.warn(f"{path}: skipping {len(skipped)} undersampled slice(s) without ground truth")
    ds.ids = [i for i in ds.ids if not meta[i]["undersampled"]]
    if data.max_slices is not None:
        ds.ids = ds.ids[:data.max_slices]
    if not ds.ids:
        raise DataError(where(path, "no slices left after filtering (contrasts/patients/ids/max_slices)"))
    return ds


# ------------------------------------------------------------------------------------------- run
def acquisitions_and_solvers(cfg: BenchConfig, shape, device, source=None, progress: bool = True):
    """(:class:`AcquisitionBank`, solvers), the problems of both raised together: a scan problem must not hide a
    solver one (the user would fix one, rerun, and only then see the next)."""
    problems, built = [], []
    for make in (lambda: AcquisitionBank(cfg, shape, source),
                 lambda: build_solvers(cfg, device, source, grid=shape[-1], progress=progress)):
        try:
            built.append(make())
        except ConfigError as exc:
            problems += problems_of(exc)
    if problems:
        raise config_error(problems)
    return tuple(built)


def run_benchmark(cfg: BenchConfig, overwrite=False, progress=True, source=None) -> dict | None:
    """Run (or resume) the benchmark of ``cfg``; returns the results dict on rank 0 (None elsewhere).

    Everything that can be checked is checked before the first file is written: config, R range, solver
    names and parameters, dataset, acquisitions against the k-space grid, the output folder's previous config.
    """
    if cfg.task == "mrf":
        from .mrf_run import run_mrf_benchmark  # quantitative maps: its own items, records and tables
        return run_mrf_benchmark(cfg, overwrite, progress, source)
    rank, world, local_rank, created = join_ranks()
    store = ResultStore(cfg.output_dir, rank)
    with RunGuard(store, world, created) as guard:
        require_same(config_hash(cfg), "benchmark configs")
        device = resolve_device(cfg.device, local_rank)
        data = cfg.data
        data_path = prepared_path(data.path, data.size, data.slices, data.contrasts, data.cache_dir,
                                  progress=progress and rank == 0)
        ds = open_dataset(cfg, data_path)
        records = run_records(cfg, grid=ds.size)  # before the weights load: what the items will run with
        acquisitions, solvers = acquisitions_and_solvers(cfg, (ds.size, ds.size), device, source, progress)
        guard.take_lock()
        store.prepare(cfg, overwrite, source, sync=lambda: barrier(world), records=records)
        barrier(world)

        items = plan(cfg, ds.ids)
        mine = ds.ids[rank::world]  # this rank's slices, round-robin
        shard = set(mine)
        my_items = [it for it in items if it.slice_id in shard]
        run = _Run(cfg, store, acquisitions, solvers, device, done=store.done())
        for it in _needing_recons(run, my_items):
            del run.done[it.key]  # finished, but its recon is gone and a map or figure still needs it
        run.bar = progress_bar(total=sum(it.key not in run.done for it in my_items), unit="item", enabled=progress,
                       desc=f"bench[{rank}]" if world > 1 else "bench", position=rank)
        for sid in mine:
            _run_slice(run, ds, sid, [it for it in my_items if it.slice_id == sid])
        run.bar.close()
        barrier(world)
        if rank != 0:
            return None
        results = store.collect(cfg, items, ds, data_path, environment(device, world))
        store.save(results)
        return results


@dataclass
class _Run:
    """What every item of one process needs, built once before the loop."""

    cfg: BenchConfig
    store: ResultStore
    acquisitions: AcquisitionBank
    solvers: dict                       # label -> solver
    device: torch.device
    done: dict                          # key -> finished record, as this run sees it
    bar: object = None                  # the progress bar
    entries: dict = field(init=False)   # label -> SolverEntry
    unc_labels: list = field(init=False)
    first_seed: int = field(init=False)  # the mask seed of figures

    def __post_init__(self):
        self.entries = {e.display: e for e in self.cfg.solvers}
        self.unc_labels = uncertainty_labels(self.cfg)
        self.first_seed = self.cfg.acquisition.seeds[0]

    def finish(self, record) -> None:
        self.store.append(record)
        self.done[record.key] = record


def _run_slice(run: _Run, ds, sid, items: list[Item]) -> None:
    """All items of one slice, then its figures and uncertainty maps (they need every recon)."""
    cfg = run.cfg
    pending_unc = [(lab, r) for r in cfg.acquisition.accelerations for lab in run.unc_labels
                   if uncertainty_key(sid, lab, r) not in run.done]
    if all(it.key in run.done for it in items) and not pending_unc and not _missing_figures(run, sid):
        return
    slc = ds[sid]
    meta = {"id": sid, "contrast": slc.contrast, "patient": slc.patient_id}
    for r in cfg.acquisition.accelerations:
        for seed in dict.fromkeys(it.seed for it in items if it.acceleration == float(r)):
            todo = [it for it in items if it.acceleration == float(r) and it.seed == seed and it.key not in run.done]
            if not todo:
                continue
            problem = make_problem(slc, run.acquisitions.acquisition(r), seed, device=run.device)
            gseed = generator_seed(cfg.seed, sid, r, seed)
            for it in todo:
                run.finish(_solve(run, it, problem, gseed, meta))
                run.bar.update(1)
    reference = reference_path(run.store.dir, sid)
    if cfg.output.save_recons and not reference.is_file():
        write_npy(reference, np.asarray(slc.reference, dtype=np.complex64))
    if cfg.output.figures:
        _draw_figures(run, slc)
    for lab, r in pending_unc:
        run.finish(_uncertainty(run, sid, lab, r, slc.reference, meta))


def _solve(run: _Run, it: Item, problem: Problem, gseed: int, meta: dict) -> Record:
    """One item: the solver's reconstruction (timed, seeded), its metrics, its recon saved when needed.
    The record takes the scan's ACS size and, where the mask only approximates R, its achieved R from
    ``problem.info``."""
    solver, entry = run.solvers[it.label], run.entries[it.label]
    y, physics, x_ref = problem
    gen = torch.Generator(device=run.device).manual_seed(gseed)
    sync(run.device)
    t0 = time.perf_counter()
    try:
        with _step_progress(run.bar, solver, it.label):
            x_hat = call_solver(solver, y, physics, gen)  # DPS solvers manage autograd themselves
    except (SamplerDivergedError, DataError, OverflowError, FloatingPointError) as exc:  # this item only
        seconds = time.perf_counter() - t0
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        warnings.warn(f"{it.label} failed on {it.slice_id} (R={it.acceleration:g}, seed {it.seed}): {message}")
        return Record(**meta, solver=it.label, name=entry.name, training_size=entry.training_size,
                      R=it.acceleration, seed=int(it.seed), acs_lines=problem.info.acs_lines, generator_seed=gseed,
                      psnr=None, ssim=None, nrmse=None, seconds=seconds, nfe=solver_nfe(solver),
                      achieved_R=problem.info.achieved_R, error=message)
    sync(run.device)
    seconds = time.perf_counter() - t0
    x_hat = x_hat.detach()
    if not torch.isfinite(x_hat).all():
        warnings.warn(f"{it.label} gave non-finite values on {it.slice_id} (R={it.acceleration:g}, seed {it.seed})")
    metrics = image_metrics(x_hat, x_ref, crop=run.cfg.crop)
    if _keep_recon(run, it):
        write_npy(run.store.recon_path(it.slice_id, it.label, it.acceleration, it.seed),
                   to_complex_numpy(x_hat).astype(np.complex64))
    return Record(**meta, solver=it.label, name=entry.name, training_size=entry.training_size,
                  R=it.acceleration, seed=int(it.seed), acs_lines=problem.info.acs_lines, generator_seed=gseed,
                  **metrics, seconds=seconds, nfe=solver_nfe(solver), achieved_R=problem.info.achieved_R)


@contextmanager
def _step_progress(bar, solver, label: str):
    """Show a diffusion sampler's step in the progress bar while it runs (through its ``callback``; a solver
    without one, or a callback the user set, is left as it is)."""
    if bar is None or not hasattr(solver, "callback") or solver.callback is not None:
        yield
        return

    def show(step, sigma, x, x0):
        bar.set_postfix_str(f"{label}: step {step + 1}, sigma {float(sigma):.3g}", refresh=False)

    solver.callback = show
    try:
        yield
    finally:
        solver.callback = None
        bar.set_postfix_str("", refresh=False)


def _draw_figures(run: _Run, slc) -> None:
    """The missing figures of one slice: every solver's recon of the first mask seed, per R, beside the
    scan's sampling pattern (``problem.info.pattern``)."""
    seed, sid = run.first_seed, slc.id
    for r in run.cfg.acquisition.accelerations:
        path = run.store.figure_path(sid, r)
        if path.exists():
            continue
        panels = []
        for e in run.cfg.solvers:
            p = run.store.recon_path(sid, e.display, r, seed)
            rec = run.done.get(item_key(sid, e.display, r, seed))
            if p.is_file() and rec is not None:
                panels.append((e.display, load_npy(p, "reconstruction"), rec.row()))
        info = make_problem(slc, run.acquisitions.acquisition(r), seed).info
        figures.slice_figure(path, slc.reference, panels, title=f"{sid}  R={r:g}  mask seed {seed}",
                             mask=info.pattern)


def _needing_recons(run: _Run, items: list[Item]) -> list[Item]:
    """Finished items whose saved recon is gone but still needed: by an uncertainty map still to be
    computed, or by a slice figure still to be drawn (a reused run's recons may not have been kept)."""
    cfg = run.cfg

    def needed(it: Item) -> bool:
        for_map = (it.label in run.unc_labels and it.seed in cfg.uncertainty.seed_list
                   and uncertainty_key(it.slice_id, it.label, it.acceleration) not in run.done)
        for_figure = (cfg.output.figures and it.seed == run.first_seed
                      and not run.store.figure_path(it.slice_id, it.acceleration).exists())
        return for_map or for_figure

    return [it for it in items if it.key in run.done and getattr(run.done[it.key], "error", None) is None
            and needed(it) and not run.store.recon_path(it.slice_id, it.label, it.acceleration, it.seed).is_file()]


def _keep_recon(run: _Run, it: Item) -> bool:
    cfg = run.cfg
    return (cfg.output.save_recons or (cfg.output.figures and it.seed == run.first_seed)
            or (it.label in run.unc_labels and it.seed in cfg.uncertainty.seed_list))


def _missing_figures(run: _Run, sid) -> bool:
    return run.cfg.output.figures and any(not run.store.figure_path(sid, r).exists()
                                          for r in run.cfg.acquisition.accelerations)


def _uncertainty(run: _Run, sid, label, acceleration, reference, meta) -> UncertaintyRecord:
    """Pixel-wise SD over the uncertainty masks (complex population SD), its map and in-brain mean."""
    cfg = run.cfg
    seeds = cfg.uncertainty.seed_list
    failed = {s for s in seeds if getattr(run.done.get(item_key(sid, label, acceleration, s)), "error", None)}
    seeds = [s for s in seeds if s not in failed]  # a failed item has no reconstruction to spread over
    if len(seeds) < 2:
        return UncertaintyRecord(**meta, solver=label, training_size=run.entries[label].training_size,
                                 R=float(acceleration), seeds=seeds, mean_std_brain=float("nan"),
                                 mean_cv_brain=float("nan"), brain_pixels=0, map="")
    stack = []
    for s in seeds:
        p = run.store.recon_path(sid, label, acceleration, s)
        if not p.is_file():
            raise DataError(where(p, "reconstruction needed for the uncertainty map is missing; "
                                     "rerun with --overwrite"))
        stack.append(load_npy(p, "reconstruction"))
    stack = np.stack(stack)
    std = pixelwise_std(stack).astype(np.float32)
    mean_mag = np.abs(stack.mean(axis=0))
    crop = cfg.uncertainty.crop
    std_c, ref_c, mean_c = (center_crop(a, crop) for a in (std, np.asarray(reference), mean_mag))
    brain = brain_mask(ref_c)
    stem = run.store.uncertainty_stem(sid, label, acceleration)
    write_npy(stem.with_name(stem.name + "_std.npy"), std)
    figures.std_heatmap(stem.with_name(stem.name + "_std.png"), std_c,
                        title=f"{label}  {sid}  R={acceleration:g}  ({len(seeds)} masks)", vmax=cfg.uncertainty.vmax)
    mean_std = float(std_c[brain].mean()) if brain.any() else float("nan")
    cv = float((std_c[brain] / np.maximum(mean_c[brain], 1e-12)).mean()) if brain.any() else float("nan")
    return UncertaintyRecord(**meta, solver=label, training_size=run.entries[label].training_size,
                             R=float(acceleration), seeds=seeds, mean_std_brain=mean_std, mean_cv_brain=cv,
                             brain_pixels=int(brain.sum()),
                             map=str(stem.with_name(stem.name + "_std.npy").relative_to(run.store.dir)))
