"""Benchmark runner: config -> (slices x accelerations x mask seeds x solvers) -> metrics, tables, figures.

One *item* is (slice id, solver label, R, mask seed). Each finished item is appended as one JSON line to
``<out>/partial/rank<r>.jsonl`` (flushed and fsynced), so an interrupted run resumes where it stopped:
finished keys are skipped. When the config changes (a solver added, another's parameters changed), every
finished item whose :func:`item_fingerprint` is unchanged is kept, from the partial files or from a previous
``results.json``, and only the rest is computed; ``overwrite`` starts afresh. Final outputs (``results.json``,
``summary.md``, figures, uncertainty maps) are written atomically. A torn last line of a partial file (a kill
during a write) is dropped with a warning; a damaged line before the end is a :class:`DataError`. One process
at a time writes an output folder (a lock file; under torchrun rank 0 holds it for all ranks), and a fresh run
that fails before finishing any item leaves no ``resolved_config.json`` behind.

Under ``torchrun --nproc_per_node=K`` the slices are sharded round-robin (rank r takes slices r::K, one
GPU each on CUDA); every rank writes its own partial file and rank 0 merges them after a barrier.

Each solver call gets a ``torch.Generator`` seeded by a stable hash of (global seed, slice id, R, mask
seed): the same across solvers, processes, restarts and world sizes.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .atomic import FolderLock, atomic_path, clean_stale_temps, read_jsonl, repair_jsonl, write_json, write_text
from .config import (BUNDLED_DEMO, BenchConfig, Problems, SolverEntry, apply_overrides, config_error, from_dict,
                     load_yaml, problems_of, to_dict)
from .data.files import safe_name
from .data.prepared import PreparedDataset, is_prepared
from .errors import ConfigError, DataError, where
from .masks import cartesian_mask, load_mask_file
from .metrics import brain_mask, center_crop, image_metrics, pixelwise_std, to_complex_numpy
from .physics import slice_problem
from .solvers.contract import call_solver, solver_nfe
from . import figures, report

PARTIAL_DIR = "partial"
RESOLVED = "resolved_config.json"


# ------------------------------------------------------------------------------------------ config
def load_bench_config(path, overrides=(), out=None) -> BenchConfig:
    """Load a benchmark YAML with ``--set`` overrides (and ``--out``), all keys and types checked."""
    data = apply_overrides(load_yaml(path), overrides)
    cfg = from_dict(BenchConfig, data, source=path)
    if out is not None:
        cfg.output.dir = str(out)
    return cfg


def config_hash(cfg: BenchConfig) -> str:
    """Hash of everything that changes results (not the ``output`` section)."""
    d = to_dict(cfg)
    d.pop("output", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


# What one item's result depends on besides its key (slice id, label, R, mask seed): the slice filters,
# the lists of R and seeds, the pairs, uncertainty and output settings only choose or report items.
_ITEM_INDEPENDENT = {"data": ("contrasts", "patients", "ids", "max_slices"), "masks": ("accelerations", "seeds")}


def item_fingerprint(config: dict, label: str, ignore_label: bool = False) -> str | None:
    """Hash of everything that determines the items of solver ``label`` under ``config`` (a
    :func:`to_dict` config); None when the config has no such solver. ``ignore_label`` leaves the label (and
    the reported training size) out, to match a solver across configs that name it differently."""
    entry = next((e for e in config.get("solvers", []) if (e.get("label") or e.get("name")) == label), None)
    if entry is None:
        return None
    if ignore_label:
        entry = {k: v for k, v in entry.items() if k not in ("label", "training_size")}
    parts = {"seed": config.get("seed"), "device": config.get("device"), "crop": config.get("crop"), "solver": entry}
    for section, independent in _ITEM_INDEPENDENT.items():
        parts[section] = {k: v for k, v in (config.get(section) or {}).items() if k not in independent}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def generator_seed(seed: int, slice_id: str, acceleration: float, mask_seed: int) -> int:
    """Stable 63-bit seed from (global seed, slice id, R, mask seed) (sha256, not Python's salted hash)."""
    text = f"{int(seed)}|{slice_id}|{float(acceleration):g}|{int(mask_seed)}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & (2 ** 63 - 1)


@dataclass(frozen=True)
class Item:
    slice_id: str
    label: str
    acceleration: float
    seed: int

    @property
    def key(self) -> str:
        return item_key(self.slice_id, self.label, self.acceleration, self.seed)


def item_key(slice_id, label, acceleration, seed) -> str:
    return f"{slice_id}|{label}|R{float(acceleration):g}|seed{int(seed)}"


def solver_seeds(cfg: BenchConfig, entry: SolverEntry) -> list[int]:
    """Mask seeds of one solver: the benchmark's, plus the uncertainty seeds when it takes part."""
    seeds = list(cfg.masks.seeds)
    if uncertainty_labels(cfg) and entry.display in uncertainty_labels(cfg):
        seeds += [s for s in cfg.uncertainty.seed_list if s not in seeds]
    return seeds


def uncertainty_labels(cfg: BenchConfig) -> list[str]:
    if not cfg.uncertainty.enabled:
        return []
    return list(cfg.uncertainty.solvers or [s.display for s in cfg.solvers])


def plan(cfg: BenchConfig, slice_ids) -> list[Item]:
    """Every item of the benchmark, in execution order (slice, R, seed, solver)."""
    items = []
    for sid in slice_ids:
        for r in cfg.masks.accelerations:
            seeds = []
            for entry in cfg.solvers:
                seeds += [s for s in solver_seeds(cfg, entry) if s not in seeds]
            for seed in seeds:
                items += [Item(sid, e.display, float(r), seed) for e in cfg.solvers if seed in solver_seeds(cfg, e)]
    return items


# -------------------------------------------------------------------------------------------- data
def resolve_data(cfg: BenchConfig, progress=True) -> Path:
    """Path of the prepared HDF5 file to read: ``bundled-demo``, a prepared file, or a raw fastMRI
    file/folder prepared once into the cache (keyed by source path, size and slice selection)."""
    data = cfg.data
    if data.path == BUNDLED_DEMO:
        from .data.bundled import demo_dataset
        return Path(demo_dataset(cache_dir=data.cache_dir))
    src = Path(data.path).expanduser()
    if not src.exists():
        raise DataError(where(src, "dataset not found (give a prepared .h5, a fastMRI file or folder, or "
                                   f"'{BUNDLED_DEMO}'; set it with --set data.path=...)"))
    if src.is_file() and is_prepared(src):
        return src
    from .data.prepare import default_cache_dir, prepare
    cache = Path(data.cache_dir).expanduser() if data.cache_dir else default_cache_dir()
    key = json.dumps([str(src.resolve()), data.size, data.slices, data.contrasts], sort_keys=True)
    out = cache / "prepared" / f"{safe_name(src.stem)}_{hashlib.sha256(key.encode()).hexdigest()[:12]}.h5"
    if out.is_file():
        return out
    return Path(prepare(src, out, size=data.size, slices=data.slices, contrasts=data.contrasts,
                        cache_dir=data.cache_dir, progress=progress))


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


class MaskBank:
    """Masks per (R, seed): generated (:func:`cartesian_mask`) or read from ``masks.file``."""

    def __init__(self, cfg: BenchConfig, shape, source=None):
        self.cfg, self.shape, self.stored = cfg.masks, tuple(shape), None
        if cfg.masks.file:
            path = Path(cfg.masks.file)
            arr = load_mask_file(path, self.shape)  # binary, finite, non-empty, on this grid
            if len(cfg.masks.accelerations) != 1:
                raise ConfigError(where(path, "a mask file needs exactly one (nominal) acceleration"))
            seeds = set(cfg.masks.seeds) | set(cfg.uncertainty.seed_list if cfg.uncertainty.enabled else ())
            bad = [s for s in seeds if not 0 <= s < arr.shape[0]]
            if bad:
                raise ConfigError(where(path, f"mask seeds {bad} index past the file's {arr.shape[0]} masks"))
            self.stored = torch.from_numpy(arr.astype(np.float32))
        else:  # validate every (R, ACS) now, before anything is written; every failing R reported
            bad = Problems(source, "masks")
            for r in cfg.masks.accelerations:
                try:
                    cartesian_mask(self.shape, r, self.acs_lines, 0)
                except ConfigError as exc:
                    bad.add("acs_lines", f": {exc}")
            bad.raise_any()

    @property
    def acs_lines(self) -> int:
        return self.cfg.acs_for(self.shape[1])

    def __call__(self, acceleration, seed) -> torch.Tensor:
        if self.stored is not None:
            return self.stored[seed]
        return cartesian_mask(self.shape, acceleration, self.acs_lines, seed)


# ------------------------------------------------------------------------------------ environment
def _dist():
    """(rank, world size, local rank, created): joins torchrun's process group (gloo, used only for
    barriers, so GPU runs need no NCCL) with a long timeout so slow ranks do not break the merge."""
    import torch.distributed as dist
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0, False
    created = False
    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=datetime.timedelta(days=7))
        created = True
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), created


def _barrier(world):
    if world > 1:
        import torch.distributed as dist
        dist.barrier()


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local rank>`` when CUDA is available, else CPU; ``cuda`` -> ``cuda:<local rank>``."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda":
        spec = f"cuda:{local_rank}"
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"device: invalid device {spec!r} (auto, cpu, cuda or cuda:K)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {spec} requested but CUDA is not available")
        torch.cuda.set_device(device)
    return device


def environment(device: torch.device, world: int) -> dict:
    """Package versions and hardware, recorded in results.json."""
    import deepinv
    from . import __version__
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    env = {
        "versions": {"padis_plugin": __version__, "torch": torch.__version__, "deepinv": deepinv.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
        "device": {"type": device.type, "cpu": cpu, "world_size": world},
    }
    if device.type == "cuda":
        env["device"]["gpu"] = torch.cuda.get_device_name(device)
    return env


# -------------------------------------------------------------------------------- partial results
def read_partial(out: Path) -> dict[str, dict]:
    """All finished records of ``<out>/partial/*.jsonl`` by key (a torn last line is dropped with a warning;
    a damaged line before it raises :class:`DataError` naming the file and line)."""
    records = {}
    for path in sorted((out / PARTIAL_DIR).glob("rank*.jsonl")):
        for rec in read_jsonl(path):
            if isinstance(rec, dict) and "key" in rec:
                records[rec["key"]] = rec
    return records


def repair_partial(out: Path) -> None:
    """Rewrite every partial file of ``out`` without its torn last line (warned once, here), so the next
    appends start on a clean line."""
    for path in sorted((out / PARTIAL_DIR).glob("rank*.jsonl")):
        repair_jsonl(path)


def _previous_records(out: Path) -> dict[str, dict]:
    """Finished records of a previous run: its partial files, else the items of its ``results.json``."""
    records = read_partial(out)
    if records or not (out / "results.json").is_file():
        return records
    try:
        rows = json.loads((out / "results.json").read_text()).get("results") or []
    except (OSError, json.JSONDecodeError, AttributeError):
        return {}
    for row in rows:
        key = item_key(row["id"], row["solver"], row["R"], row["seed"])
        records[key] = {"kind": "item", "key": key, **row}
    return records


def reusable_records(out: Path, previous_config: dict | None, cfg: BenchConfig) -> tuple[dict[str, dict], bool]:
    """The previous run's item records that ``cfg`` would compute identically (same fingerprint), and
    whether its figures stay true: no solver they show was changed or dropped (added ones are only missing)."""
    if previous_config is None:
        return {}, False
    new = to_dict(cfg)
    old_labels = {e.get("label") or e.get("name") for e in previous_config.get("solvers", [])}
    same = {lab for lab in old_labels if item_fingerprint(new, lab) == item_fingerprint(previous_config, lab)}
    kept = {k: r for k, r in _previous_records(out).items() if r.get("kind") == "item" and r.get("solver") in same}
    return kept, bool(kept) and same == old_labels


def borrowed_records(cfg: BenchConfig, source=None) -> dict[str, dict]:
    """Items of the ``output.reuse_from`` folders that ``cfg`` would compute identically, relabelled to
    this config's labels (each record notes where it came from)."""
    new = to_dict(cfg)
    borrowed = {}
    for src in cfg.output.reuse_from:
        folder = Path(src.dir)
        try:
            other = json.loads((folder / RESOLVED).read_text())["config"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            raise ConfigError(where(source, f"output.reuse_from: {folder} holds no readable {RESOLVED}")) from None
        records = _previous_records(folder)
        for label, theirs in src.solvers.items():
            if item_fingerprint(new, label, True) is None:
                raise ConfigError(where(source, f"output.reuse_from: '{label}' is not a solver of this config"))
            if item_fingerprint(new, label, True) != item_fingerprint(other, theirs, True):
                warnings.warn(f"{folder}: solver '{theirs}' differs from '{label}' here; not reused")
                continue
            mine = next(e for e in cfg.solvers if e.display == label)
            for rec in records.values():
                if rec.get("kind") == "item" and rec.get("solver") == theirs:
                    key = item_key(rec["id"], label, rec["R"], rec["seed"])
                    borrowed[key] = {**rec, "key": key, "solver": label, "training_size": mine.training_size,
                                     "reused_from": str(folder)}
    return borrowed


class PartialWriter:
    """Appends one JSON line per finished record, flushed and fsynced (a crash loses at most the line
    being written, which the reader then drops with a warning)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_jsonl(path)  # a torn last line is removed: appends must not bury it mid-file

    def append(self, record: dict):
        self._write(json.dumps(record) + "\n")

    def _write(self, text):
        with open(self.path, "a") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def _prepare_output(out: Path, cfg: BenchConfig, h: str, overwrite: bool, rank: int, source):
    """Keep every finished item of a previous run in ``out`` that this config would compute identically
    (all of them when the config is unchanged, none with ``overwrite``); rank 0 clears the rest. Recons of
    kept items stay, and so do the figures unless a solver they show changed (a figure is drawn when missing)."""
    resolved = out / RESOLVED
    previous = None
    if resolved.is_file():
        try:
            previous = json.loads(resolved.read_text())
        except (OSError, json.JSONDecodeError):
            previous = {}
    elif (out / "results.json").exists() or (out / PARTIAL_DIR).exists():
        previous = {}
    if previous == {} and not overwrite:
        raise ConfigError(where(out, "holds results of an unknown configuration (no readable "
                                     f"{RESOLVED}); use another --out or pass --overwrite"))
    reusable = borrowed_records(cfg, source)  # its config errors before anything here is deleted or written
    if rank != 0:
        return
    if not overwrite:
        repair_partial(out)
    kept = {}
    if previous is not None and (overwrite or previous.get("hash") != h):
        kept, figures_valid = ({}, False) if overwrite else reusable_records(out, previous.get("config"), cfg)
        stale = [PARTIAL_DIR, "uncertainty"] + ([] if kept else ["recons"]) + ([] if figures_valid else ["figures"])
        for name in stale:
            shutil.rmtree(out / name, ignore_errors=True)
        for name in ("results.json", "summary.md", RESOLVED):
            (out / name).unlink(missing_ok=True)
        if kept:
            print(f"{out}: configuration changed; reusing {len(kept)} finished item(s) whose solver, data and "
                  "mask settings are unchanged")
    elif previous is not None and not read_partial(out):
        kept = _previous_records(out)  # same config, partial files gone (a fresh clone of committed results)
    finished = kept or read_partial(out)  # what rank0.jsonl must hold besides the borrowed items
    borrowed = {k: r for k, r in reusable.items() if k not in finished}
    if borrowed:
        print(f"{out}: taking {len(borrowed)} finished item(s) from output.reuse_from")
        kept = {**finished, **borrowed}
    if kept:
        write_text(out / PARTIAL_DIR / "rank0.jsonl", "".join(json.dumps(r) + "\n" for r in kept.values()))
    out.mkdir(parents=True, exist_ok=True)
    write_json(resolved, {"hash": h, "config": to_dict(cfg)})


def _lock_output(out: Path, rank: int, world: int) -> FolderLock | None:
    """Rank 0 locks the output folder (a second benchmark writing it is refused) and removes temporaries of
    killed writes there; under torchrun every rank stops when rank 0 cannot have the folder."""
    lock, problem = None, None
    if rank == 0:
        try:
            lock = FolderLock(out, "results folder").acquire()
            clean_stale_temps(out, recursive=True)
        except (ConfigError, OSError) as exc:
            problem = exc
    if world > 1:
        import torch.distributed as dist
        told = [None if problem is None else str(problem)]
        dist.broadcast_object_list(told, src=0)
        if told[0] is not None and problem is None:
            raise ConfigError(f"rank 0: {told[0]}")
    if problem is not None:
        raise problem
    return lock


def _undo_fresh_start(out: Path) -> None:
    """A run into a new folder failed before finishing any item: remove its resolved config and empty
    partial folder, so nothing suggests results are there."""
    try:
        if read_partial(out):
            return
    except DataError:
        return
    (out / RESOLVED).unlink(missing_ok=True)
    shutil.rmtree(out / PARTIAL_DIR, ignore_errors=True)


def save_array(path: Path, array: np.ndarray):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def recon_path(out: Path, slice_id, label, acceleration, seed) -> Path:
    return out / "recons" / safe_name(slice_id) / f"{safe_name(label)}_R{float(acceleration):g}_seed{seed}.npy"


# ------------------------------------------------------------------------------------------- run
def build_solvers(cfg: BenchConfig, device, source=None) -> dict:
    """label -> solver; unknown names and parameters of every entry raise one ConfigError naming the keys."""
    from .registry import available_solvers, build_solver
    names = available_solvers()
    solvers, bad = {}, Problems(source)
    for i, entry in enumerate(cfg.solvers):
        if entry.name not in names:
            bad.add(f"solvers.{i}.name", f": unknown solver '{entry.name}' (available: {', '.join(names)})")
            continue
        try:
            solvers[entry.display] = build_solver(entry.name, dict(entry.params), device=device)
        except ConfigError as exc:
            bad.add(f"solvers.{i}", f"({entry.display}): {exc}")
    bad.raise_any()
    return solvers


def masks_and_solvers(cfg: BenchConfig, shape, device, source=None):
    """(:class:`MaskBank`, solvers), the problems of both raised together: a mask problem must not hide a
    solver one (the user would fix one, rerun, and only then see the next)."""
    problems, built = [], []
    for make in (lambda: MaskBank(cfg, shape, source), lambda: build_solvers(cfg, device, source)):
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
    names and parameters, dataset, masks against the k-space grid, the output folder's previous config.
    """
    rank, world, local_rank, created = _dist()
    lock, fresh = None, False
    try:
        device = resolve_device(cfg.device, local_rank)
        data_path = resolve_data(cfg, progress=progress and rank == 0)
        ds = open_dataset(cfg, data_path)
        masks, solvers = masks_and_solvers(cfg, (ds.size, ds.size), device, source)
        out = cfg.output_dir
        h = config_hash(cfg)
        fresh = not any((out / name).exists() for name in (RESOLVED, PARTIAL_DIR, "results.json"))
        lock = _lock_output(out, rank, world)
        _prepare_output(out, cfg, h, overwrite, rank, source)
        _barrier(world)

        mine = ds.ids[rank::world]
        done = read_partial(out)
        for it in _needing_recons(cfg, out, mine, done):
            del done[it.key]  # finished, but its recon is gone and a map or figure still needs it
        writer = PartialWriter(out / PARTIAL_DIR / f"rank{rank}.jsonl")
        todo = [it for it in plan(cfg, mine) if it.key not in done]
        bar = tqdm(total=len(todo), desc=f"bench[{rank}]" if world > 1 else "bench", unit="item",
                   disable=not progress, position=rank)
        for sid in mine:
            _run_slice(cfg, ds, sid, masks, solvers, device, out, done, writer, bar)
        bar.close()
        _barrier(world)
        if rank != 0:
            return None
        results = collect(cfg, out, ds, data_path, device, world)
        write_json(out / "results.json", results)
        write_text(out / "summary.md", report.summary_markdown(results))
        return results
    except BaseException:
        if fresh and lock is not None and world == 1:
            _undo_fresh_start(cfg.output_dir)
        raise
    finally:
        if lock is not None:
            lock.release()
        if created:
            import torch.distributed as dist
            dist.destroy_process_group()


def _run_slice(cfg, ds, sid, masks, solvers, device, out, done, writer, bar):
    """All items of one slice, then its figures and uncertainty maps (they need every recon)."""
    items = plan(cfg, [sid])
    unc_labels = uncertainty_labels(cfg)
    pending_unc = [(lab, r) for r in cfg.masks.accelerations for lab in unc_labels
                   if _unc_key(sid, lab, r) not in done]
    if all(it.key in done for it in items) and not pending_unc and not _missing_figures(cfg, out, sid):
        return
    slc = ds[sid]
    meta = {"id": sid, "contrast": slc.contrast, "patient": slc.patient_id}
    first_seed = cfg.masks.seeds[0]
    for r in cfg.masks.accelerations:
        for seed in dict.fromkeys(it.seed for it in items if it.acceleration == float(r)):
            todo = [it for it in items if it.acceleration == float(r) and it.seed == seed and it.key not in done]
            if not todo:
                continue
            y, physics, x_ref = slice_problem(slc, masks(r, seed), device=device)
            gseed = generator_seed(cfg.seed, sid, r, seed)
            for it in todo:
                solver = solvers[it.label]
                gen = torch.Generator(device=device).manual_seed(gseed)
                _sync(device)
                t0 = time.perf_counter()
                x_hat = call_solver(solver, y, physics, gen)  # DPS solvers manage autograd themselves
                _sync(device)
                seconds = time.perf_counter() - t0
                x_hat = x_hat.detach()
                if not torch.isfinite(x_hat).all():
                    warnings.warn(f"{it.label} gave non-finite values on {sid} (R={r:g}, seed {seed})")
                metrics = image_metrics(x_hat, x_ref, crop=cfg.crop)
                if _keep_recon(cfg, it, first_seed, unc_labels):
                    save_array(recon_path(out, sid, it.label, r, seed), to_complex_numpy(x_hat).astype(np.complex64))
                entry = next(e for e in cfg.solvers if e.display == it.label)
                rec = {"kind": "item", "key": it.key, **meta, "solver": it.label, "name": entry.name,
                       "training_size": entry.training_size, "R": float(r), "seed": int(seed),
                       "acs_lines": masks.acs_lines, "generator_seed": gseed, **metrics, "seconds": seconds,
                       "nfe": solver_nfe(solver)}
                writer.append(rec)
                done[it.key] = rec
                bar.update(1)
    ref = slc.reference
    if cfg.output.figures:
        for r in cfg.masks.accelerations:
            path = figure_path(out, sid, r)
            if not path.exists():
                panels = []
                for e in cfg.solvers:
                    p = recon_path(out, sid, e.display, r, first_seed)
                    rec = done.get(item_key(sid, e.display, r, first_seed))
                    if p.is_file() and rec is not None:
                        panels.append((e.display, np.load(p), rec))
                figures.slice_figure(path, ref, panels, title=f"{sid}  R={r:g}  mask seed {first_seed}",
                                     mask=masks(r, first_seed).numpy())
    for lab, r in pending_unc:
        writer.append(_uncertainty(cfg, out, sid, lab, r, ref, meta, done))


def _needing_recons(cfg, out, slice_ids, done) -> list[Item]:
    """Finished items whose saved recon is gone but still needed: by an uncertainty map still to be
    computed, or by a slice figure still to be drawn (a reused run's recons may not have been kept)."""
    labels, first_seed = uncertainty_labels(cfg), cfg.masks.seeds[0]

    def needed(it: Item) -> bool:
        for_map = (it.label in labels and it.seed in cfg.uncertainty.seed_list
                   and _unc_key(it.slice_id, it.label, it.acceleration) not in done)
        for_figure = (cfg.output.figures and it.seed == first_seed
                      and not figure_path(out, it.slice_id, it.acceleration).exists())
        return for_map or for_figure

    return [it for it in plan(cfg, slice_ids) if it.key in done and needed(it)
            and not recon_path(out, it.slice_id, it.label, it.acceleration, it.seed).is_file()]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _keep_recon(cfg, it: Item, first_seed, unc_labels) -> bool:
    return (cfg.output.save_recons or (cfg.output.figures and it.seed == first_seed)
            or (it.label in unc_labels and it.seed in cfg.uncertainty.seed_list))


def figure_path(out: Path, slice_id, acceleration) -> Path:
    return out / "figures" / f"{safe_name(slice_id)}_R{float(acceleration):g}.png"


def _missing_figures(cfg, out, sid) -> bool:
    return cfg.output.figures and any(not figure_path(out, sid, r).exists() for r in cfg.masks.accelerations)


def _unc_key(sid, label, acceleration) -> str:
    return f"uncertainty|{sid}|{label}|R{float(acceleration):g}"


def _uncertainty(cfg, out, sid, label, acceleration, reference, meta, done) -> dict:
    """Pixel-wise SD over the uncertainty masks (complex population SD), its map and in-brain mean."""
    seeds = cfg.uncertainty.seed_list
    stack = []
    for s in seeds:
        p = recon_path(out, sid, label, acceleration, s)
        if not p.is_file():
            raise DataError(where(p, "reconstruction needed for the uncertainty map is missing; "
                                     "rerun with --overwrite"))
        stack.append(np.load(p))
    stack = np.stack(stack)
    std = pixelwise_std(stack).astype(np.float32)
    mean_mag = np.abs(stack.mean(axis=0))
    crop = cfg.uncertainty.crop
    std_c, ref_c, mean_c = (center_crop(a, crop) for a in (std, np.asarray(reference), mean_mag))
    brain = brain_mask(ref_c)
    stem = out / "uncertainty" / f"{safe_name(sid)}_{safe_name(label)}_R{float(acceleration):g}"
    save_array(stem.with_name(stem.name + "_std.npy"), std)
    figures.std_heatmap(stem.with_name(stem.name + "_std.png"), std_c,
                        title=f"{label}  {sid}  R={acceleration:g}  ({len(seeds)} masks)", vmax=cfg.uncertainty.vmax)
    mean_std = float(std_c[brain].mean()) if brain.any() else float("nan")
    cv = float((std_c[brain] / np.maximum(mean_c[brain], 1e-12)).mean()) if brain.any() else float("nan")
    rec = {"kind": "uncertainty", "key": _unc_key(sid, label, acceleration), **meta, "solver": label,
           "training_size": next(e.training_size for e in cfg.solvers if e.display == label),
           "R": float(acceleration), "seeds": seeds, "mean_std_brain": mean_std, "mean_cv_brain": cv,
           "brain_pixels": int(brain.sum()), "map": str(stem.with_name(stem.name + "_std.npy").relative_to(out))}
    done[rec["key"]] = rec
    return rec


def collect(cfg: BenchConfig, out: Path, ds: PreparedDataset, data_path, device, world) -> dict:
    """Merge every rank's partial records into the final results dict (checks nothing is missing)."""
    records = read_partial(out)
    expected = plan(cfg, ds.ids)
    missing = [it.key for it in expected if it.key not in records]
    if missing:
        raise DataError(where(out, f"{len(missing)} item(s) missing after the run, e.g. {missing[0]}"))
    rows = [records[it.key] for it in expected]
    unc = [records[_unc_key(s, lab, r)] for s in ds.ids for r in cfg.masks.accelerations
           for lab in uncertainty_labels(cfg) if _unc_key(s, lab, r) in records]
    strip = ("kind", "key")
    rows = [{k: v for k, v in r.items() if k not in strip} for r in rows]
    unc = [{k: v for k, v in r.items() if k not in strip} for r in unc]
    contrasts = sorted({r["contrast"] for r in rows})
    return {
        "name": cfg.name,
        "config": to_dict(cfg),
        "config_hash": config_hash(cfg),
        **environment(device, world),
        "dataset": {"path": str(data_path), "size": ds.size, "n_slices": len(ds.ids), "ids": list(ds.ids),
                    "contrasts": contrasts},
        "results": rows,
        "means": report.means(rows, cfg.masks.seeds),
        "paired": report.paired(rows, report.pair_list(cfg), cfg.masks.seeds),
        "uncertainty": {"per_slice": unc, "means": report.uncertainty_means(unc)} if cfg.uncertainty.enabled else None,
    }
