"""The benchmark's ``mrf`` task: MR-fingerprinting items (a file of ``padis-simulate --mrf``) x solvers -> T1 / T2
errors, tables and map figures.

One item is (slice, solver): the file's own spiral acquisition measured each slice once, so there are no
accelerations or mask seeds. Each solver call gets a generator seeded by a stable hash of (global seed, slice id),
the same across solvers, processes and restarts; finished items are kept in the results folder, so an
interrupted run resumes where it stopped. Under ``torchrun --nproc_per_node=K`` the slices are sharded round-robin
(rank r takes slices r::K) and rank 0 merges the ranks' records, as for the slice task.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from ..atomic import write_json, write_npz, write_text
from ..errors import DataError, where
from ..metrics import METRICS, MRF_METRICS, map_metrics
from ..progress import progress_bar
from ..solvers.base import SamplerDivergedError
from ..solvers.contract import call_solver, solver_nfe
from ..timing import sync
from . import figures
from .build import build_solvers
from .config import BenchConfig
from .items import config_hash, generator_seed
from .records import MRFRecord, mrf_key
from .runtime import RunGuard, barrier, environment, join_ranks, resolve_device
from ..ranks import require_same
from .store import RESULTS, SUMMARY, ResultStore
from .weights import run_records


def open_mrf_file(cfg: BenchConfig):
    """The MRF file of ``data.path`` with the config's patient / id filters and ``max_slices``."""
    from ..mrf.files import MRFFile

    data = cfg.data
    f = MRFFile(data.path, patients=data.patients, ids=data.ids)
    ids = list(f.ids)[:data.max_slices] if data.max_slices is not None else list(f.ids)
    if not ids:
        raise DataError(where(data.path, "no MRF items left after filtering (patients/ids/max_slices)"))
    return f, ids


def run_mrf_benchmark(cfg: BenchConfig, overwrite=False, progress=True, source=None) -> dict | None:
    """Run (or resume) an ``mrf`` benchmark; returns the results dict on rank 0 (also written as results.json),
    None on the other ranks."""
    rank, world, local_rank, created = join_ranks()
    store = ResultStore(cfg.output_dir, rank)
    with RunGuard(store, world, created) as guard:
        require_same(config_hash(cfg), "benchmark configs")
        device = resolve_device(cfg.device, local_rank)
        f, ids = open_mrf_file(cfg)
        records = run_records(cfg)  # before the weights load: what the items will run with
        solvers = build_solvers(cfg, device, source, progress=progress)
        guard.take_lock()
        store.prepare(cfg, overwrite, source, sync=lambda: barrier(world), records=records)
        barrier(world)
        done = store.done()
        labels = [e.display for e in cfg.solvers]
        mine = ids[rank::world]
        bar = progress_bar(total=sum(mrf_key(s, lab) not in done for s in mine for lab in labels), unit="item",
                           desc=f"bench[mrf {rank}]" if world > 1 else "bench[mrf]", enabled=progress,
                           position=rank)
        for sid in mine:
            todo = [lab for lab in labels if mrf_key(sid, lab) not in done]
            figure = store.dir / "figures" / f"{_safe(sid)}.png"
            if not todo and (not cfg.output.figures or figure.exists()):
                continue
            problem = f.problem(sid, device)
            meta = {"id": sid, **f.meta(sid)}
            gseed = generator_seed(cfg.seed, sid, 0, 0)
            for lab in todo:
                rec, maps = _solve(cfg, solvers[lab], lab, problem, meta, gseed, device)
                store.append(rec)
                done[rec.key] = rec
                if maps is not None and (cfg.output.save_recons or cfg.output.figures):
                    write_npz(_maps_path(store, sid, lab), **maps)
                bar.update(1)
            if cfg.output.figures and (todo or not figure.exists()):
                # a reused item's maps were not carried over: recompute them (same seed, so the record's own
                # maps to float rounding) for its panel; its record stays the one reused
                for lab in labels:
                    if lab not in todo and not _maps_path(store, sid, lab).is_file():
                        maps = _solve(cfg, solvers[lab], lab, problem, meta, gseed, device)[1]
                        if maps is not None:
                            write_npz(_maps_path(store, sid, lab), **maps)
                _figure(store, figure, sid, labels, problem.info.extra["maps"], done)
        bar.close()
        barrier(world)
        if rank != 0:
            return None
        results = collect(cfg, store, ids, labels, f, environment(device, world))
        write_json(store.dir / RESULTS, results)
        write_text(store.dir / SUMMARY, summary_markdown(results))
        return results


def _maps_path(store, sid: str, label: str):
    return store.dir / "maps" / _safe(sid) / f"{_safe(label)}.npz"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))


def _solve(cfg, solver, label, problem, meta, gseed, device):
    """One item: the solver's TSMI (timed, seeded), its maps by dictionary matching, their errors."""
    from ..mrf.matching import match_image

    gen = torch.Generator(device=device).manual_seed(gseed)
    entry = next(e for e in cfg.solvers if e.display == label)
    sync(device)
    t0 = time.perf_counter()
    try:
        z = call_solver(solver, problem.y, problem.physics, gen)
    except (SamplerDivergedError, DataError, OverflowError, FloatingPointError) as exc:  # this item only
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        warnings.warn(f"{label} failed on {meta['id']}: {message}")
        rec = MRFRecord(id=meta["id"], contrast=meta.get("contrast", "?"), patient=meta.get("patient"),
                        solver=label, name=entry.name, generator_seed=gseed, **dict.fromkeys(MRF_METRICS),
                        seconds=time.perf_counter() - t0, nfe=solver_nfe(solver), error=message)
        return rec, None
    sync(device)
    seconds = time.perf_counter() - t0
    z = z.detach()
    if not bool(torch.isfinite(torch.view_as_real(z)).all()):
        warnings.warn(f"{label} gave non-finite values on {meta['id']}")
    ref = problem.info.extra["maps"]
    est = match_image(problem.physics.dictionary, z[0])
    t1, t2 = est.t1.cpu().numpy(), est.t2.cpu().numpy()
    wm = ref.wm if ref.tissue is not None else None
    gm = ref.gm if ref.tissue is not None else None
    metrics = map_metrics(t1, t2, ref.t1, ref.t2, ref.mask, wm, gm)
    x_ref = problem.x_ref
    metrics["tsmi_nrmse"] = float(torch.linalg.vector_norm(z - x_ref) / torch.linalg.vector_norm(x_ref))
    with torch.no_grad():
        resid = problem.physics.A(z) - problem.y
    metrics["kspace_nrmse"] = float(torch.linalg.vector_norm(resid) / torch.linalg.vector_norm(problem.y))
    rec = MRFRecord(id=meta["id"], contrast=meta.get("contrast", "?"), patient=meta.get("patient"), solver=label,
                    name=entry.name, generator_seed=gseed, **metrics, seconds=seconds, nfe=solver_nfe(solver))
    maps = {"t1": t1.astype(np.float32), "t2": t2.astype(np.float32),
            "pd": est.pd.cpu().numpy().astype(np.complex64)}
    return rec, maps


def _figure(store, path, sid, labels, ref, done) -> None:
    panels = []
    for lab in labels:
        p = _maps_path(store, sid, lab)
        rec = done.get(mrf_key(sid, lab))
        if p.is_file() and rec is not None:
            with np.load(p, allow_pickle=False) as z:
                panels.append((lab, {k: z[k] for k in ("t1", "t2", "pd")}, rec.row()))
    figures.mrf_figure(path, ref, panels, title=sid)


def collect(cfg, store, ids, labels, f, env) -> dict:
    """The results dict: every item's row, each solver's mean and SD of every metric, and paired differences."""
    from ..config import to_dict

    done = store.done()
    missing = [mrf_key(s, lab) for s in ids for lab in labels if mrf_key(s, lab) not in done]
    if missing:
        raise DataError(where(store.dir, f"{len(missing)} item(s) missing after the run, e.g. {missing[0]}"))
    rows = [done[mrf_key(s, lab)].row() for s in ids for lab in labels]
    means = []
    for lab in labels:
        group = [r for r in rows if r["solver"] == lab and not r.get("error")]  # failed items: listed, not averaged
        entry = {"solver": lab, "n": len(group)}
        for m in MRF_METRICS:
            v = np.array([g[m] for g in group], dtype=np.float64)
            v = v[np.isfinite(v)]
            entry[m] = float(v.mean()) if v.size else float("nan")
            entry[f"{m}_sd"] = float(v.std()) if v.size else float("nan")
        entry["seconds"] = float(np.mean([g["seconds"] for g in group])) if group else float("nan")
        entry["nfe"] = float(np.mean([g["nfe"] or 0 for g in group])) if group else float("nan")
        means.append(entry)
    failed = [{k: r[k] for k in ("id", "solver", "error")} for r in rows if r.get("error")]
    return {"name": cfg.name, "task": "mrf", "config": to_dict(cfg), "config_hash": config_hash(cfg), **env,
            "dataset": {"path": str(cfg.data.path), "n_slices": len(ids), "ids": ids, "setup": f.setup.to_dict()},
            "results": rows, "means": means, **({"failed": failed} if failed else {})}


def summary_markdown(results: dict) -> str:
    """``summary.md``: one table, a row per solver, mean +- SD of every map metric, seconds and network calls."""
    cols = ("mape_t1", "mape_t2", "mape_t1_wm", "mape_t2_wm", "mape_t1_gm", "mape_t2_gm", "tsmi_nrmse")
    lines = [f"# Benchmark `{results['name']}` (MR fingerprinting)", "",
             f"- data: `{results['dataset']['path']}` ({results['dataset']['n_slices']} slices, setup "
             f"{results['dataset']['setup']})",
             "- T1 / T2 MAPE inside each slice's tissue mask (and its white / grey matter); maps by matching the "
             "solver's TSMI to the dictionary",
             f"- device: {results.get('device_name', results.get('device'))}; config hash `{results['config_hash']}`",
             "", "Mean ± SD over slices.", "",
             "| Solver | " + " | ".join(METRICS[c].title for c in cols) + " | time (s) | NFE |",
             "|---" * (len(cols) + 3) + "|"]
    for m in results["means"]:
        cells = [f"{m[c]:.{METRICS[c].digits}f} ± {m[c + '_sd']:.{METRICS[c].digits}f}" for c in cols]
        lines.append(f"| {m['solver']} | " + " | ".join(cells) + f" | {m['seconds']:.1f} | {m['nfe']:.0f} |")
    failed = results.get("failed") or []
    if failed:
        lines += ["", f"## Failed items ({len(failed)}): left out of the means above", "", "| Slice | Solver | Error |",
                  "|---|---|---|"]
        lines += [f"| {b['id']} | {b['solver']} | {' '.join(b['error'].split()).replace('|', chr(92) + '|')} |"
                  for b in failed]
    return "\n".join(lines) + "\n"
