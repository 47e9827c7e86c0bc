"""The results folder of one benchmark: finished records, their reuse across configs, the final results.

Each finished record is appended as one JSON line to ``<out>/partial/rank<r>.jsonl`` (flushed and fsynced),
so an interrupted run resumes where it stopped. A torn last line (a kill during a write) is dropped with a
warning; a damaged line before the end is a :class:`DataError`. ``resolved_config.json`` records the config
that wrote the folder: when the config changes, every finished item whose fingerprint is unchanged is kept
(from the partial files, or from a previous ``results.json``) and the rest is cleared. ``results.json`` and
``summary.md`` are written atomically. One process at a time writes a folder (a lock file; under torchrun
rank 0 holds it for all ranks).
"""
from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

from . import report
from ..atomic import FolderLock, clean_stale_temps, read_jsonl, repair_jsonl, write_json, write_text
from .items import (Item, config_hash, item_fingerprint, solver_labels, uncertainty_key, uncertainty_labels,
                          unchanged_solvers)
from .records import MRFRecord, Record, UncertaintyRecord, from_json
from .config import BenchConfig
from .weights import RECORDS, certified, changed_records, unknown_to
from ..config import to_dict
from ..data.files import safe_name
from ..errors import ConfigError, DataError, where

PARTIAL_DIR = "partial"
RESOLVED = "resolved_config.json"
RESULTS = "results.json"
SUMMARY = "summary.md"

AnyRecord = Record | UncertaintyRecord


def recon_path(out: Path, slice_id, label, acceleration, seed) -> Path:
    return Path(out) / "recons" / safe_name(slice_id) / f"{safe_name(label)}_R{float(acceleration):g}_seed{seed}.npy"


def reference_path(out: Path, slice_id) -> Path:
    """The slice's reference image (complex64), saved beside its recons (``padis-study create`` reads it)."""
    return Path(out) / "recons" / safe_name(slice_id) / "reference.npy"


def figure_path(out: Path, slice_id, acceleration) -> Path:
    return Path(out) / "figures" / f"{safe_name(slice_id)}_R{float(acceleration):g}.png"


class ResultStore:
    """The results folder ``out_dir`` as seen by process ``rank`` (which appends to its own partial file)."""

    def __init__(self, out_dir, rank: int = 0):
        self.dir = Path(out_dir)
        self.rank = rank
        self._partial = self.dir / PARTIAL_DIR / f"rank{rank}.jsonl"
        self._appending = False

    # ------------------------------------------------------------------------------------------ layout
    def recon_path(self, slice_id, label, acceleration, seed) -> Path:
        return recon_path(self.dir, slice_id, label, acceleration, seed)

    def figure_path(self, slice_id, acceleration) -> Path:
        return figure_path(self.dir, slice_id, acceleration)

    def uncertainty_stem(self, slice_id, label, acceleration) -> Path:
        """Path less suffix of one uncertainty map (``_std.npy`` and ``_std.png`` are added)."""
        return self.dir / "uncertainty" / f"{safe_name(slice_id)}_{safe_name(label)}_R{float(acceleration):g}"

    # ----------------------------------------------------------------------------------------- records
    def done(self) -> dict[str, AnyRecord]:
        """Every finished record of every rank's partial file, by key (a torn last line is dropped with a
        warning; a damaged line before it raises :class:`DataError` naming the file and line)."""
        records = {}
        for path in self._partial_files():
            for obj in read_jsonl(path):
                if isinstance(obj, dict) and "key" in obj:
                    rec = from_json(obj, path)
                    records[rec.key] = rec
        return records

    def append(self, record: AnyRecord) -> None:
        """Append one finished record to this rank's partial file, flushed and fsynced (a crash loses at most
        the line being written, which :meth:`done` then drops with a warning)."""
        if not self._appending:
            self._partial.parent.mkdir(parents=True, exist_ok=True)
            repair_jsonl(self._partial)  # a torn last line is removed: appends must not bury it mid-file
            self._appending = True
        with open(self._partial, "a") as f:
            f.write(json.dumps(record.to_json()) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def reuse_from(self, previous_config: dict | None, cfg: BenchConfig, labels: dict[str, str] | None = None,
                   source=None, stale: set[str] = frozenset()) -> dict[str, Record]:
        """Finished items of this folder, written under ``previous_config`` (a :func:`to_dict` config), that
        ``cfg`` would compute identically (same :func:`item_fingerprint`), less those of the labels of ``cfg`` in
        ``stale`` (their checkpoint's weights changed: :mod:`.weights`).

        ``labels`` (``output.reuse_from``: label of ``cfg`` -> label here) takes items over into another
        config: solvers are compared less their labels, and each record is relabelled and notes this folder.
        A label ``cfg`` lacks is a :class:`ConfigError`; a solver that differs is warned about and skipped."""
        if previous_config is None:
            return {}
        new = to_dict(cfg)
        earlier = [r for r in self._earlier_records().values() if isinstance(r, (Record, MRFRecord))]
        if labels is None:
            same = unchanged_solvers(previous_config, new) - set(stale)
            return {r.key: r for r in earlier if r.solver in same}
        entries = {e.display: e for e in cfg.solvers}
        taken = {}
        for mine, theirs in labels.items():
            if item_fingerprint(new, mine, True) is None:
                raise ConfigError(where(source, f"output.reuse_from: '{mine}' is not a solver of this config"))
            if item_fingerprint(new, mine, True) != item_fingerprint(previous_config, theirs, True):
                warnings.warn(f"{self.dir}: solver '{theirs}' differs from '{mine}' here; not reused")
                continue
            if mine in stale:
                warnings.warn(f"{self.dir}: solver '{theirs}' ran with other checkpoint weights or resolved "
                              f"settings than '{mine}' here; not reused")
                continue
            for rec in earlier:
                if rec.solver == theirs:
                    ours = rec.relabelled(mine, entries[mine].training_size, str(self.dir))
                    taken[ours.key] = ours
        return taken

    def _partial_files(self) -> list[Path]:
        return sorted((self.dir / PARTIAL_DIR).glob("rank*.jsonl"))

    def _earlier_records(self) -> dict[str, AnyRecord]:
        """Finished records of a previous run: its partial files, else the items of its ``results.json``."""
        records = self.done()
        path = self.dir / RESULTS
        if records or not path.is_file():
            return records
        try:
            results = json.loads(path.read_text())
            rows = results.get("results") or []
        except (OSError, json.JSONDecodeError, AttributeError):
            return {}
        kind = MRFRecord.kind if results.get("task") == "mrf" else Record.kind  # the rows carry no kind
        for row in rows:
            rec = from_json({"kind": kind, **row}, path)
            records[rec.key] = rec
        return records

    # --------------------------------------------------------------------------------------- lifecycle
    def is_fresh(self) -> bool:
        """No run has written here yet."""
        return not any((self.dir / name).exists() for name in (RESOLVED, PARTIAL_DIR, RESULTS))

    def lock(self, world: int = 1) -> FolderLock | None:
        """Rank 0 locks the folder (a second benchmark writing it is refused) and removes temporaries of
        killed writes there; under torchrun every rank stops when rank 0 cannot have the folder."""
        lock, problem = None, None
        if self.rank == 0:
            try:
                lock = FolderLock(self.dir, "results folder").acquire()
                clean_stale_temps(self.dir, recursive=True)
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

    def prepare(self, cfg: BenchConfig, overwrite: bool = False, source=None, sync=None,
                records: dict[str, dict] | None = None) -> None:
        """Keep every finished item of a previous run here that ``cfg`` would compute identically (all of them
        when the config and the ``records`` (:func:`.weights.run_records`: each solver's checkpoint digest and
        resolved settings now) are unchanged, none with ``overwrite``), add those of ``output.reuse_from``; rank 0
        clears the rest. Recons of kept items stay, and so do the figures unless a solver they show changed
        (a figure is drawn when missing). Every config error is raised before anything is deleted or written.
        ``sync``: a barrier of all ranks (torchrun), called once every rank has read what it checks and before
        rank 0 rewrites the folder, so no rank reads it half-rewritten."""
        previous = self._previous_run()
        if previous == {} and not overwrite:
            raise ConfigError(where(self.dir, "holds results of an unknown configuration (no readable "
                                              f"{RESOLVED}); use another --out or pass --overwrite"))
        records = {key: dict((records or {}).get(key) or {}) for key in RECORDS}
        reusable, unknown = self._borrowed(cfg, source, records)
        if sync is not None:
            sync()
        if self.rank != 0:
            return
        if not overwrite:
            for path in self._partial_files():
                repair_jsonl(path)  # warned once, here; the next appends start on a clean line
        h = config_hash(cfg)
        kept = {}
        retrained = changed_records(previous, records)
        if previous is not None and (overwrite or previous.get("hash") != h or retrained):
            old = previous.get("config")
            kept = {} if overwrite else self.reuse_from(old, cfg, stale=retrained)
            told = retrained & unchanged_solvers(old, to_dict(cfg)) if old else set()  # the rest: config changed
            if told and not overwrite:
                print(f"{self.dir}: the checkpoint weights or resolved settings (a changed default) of "
                      f"{', '.join(sorted(told))} changed since their items ran; computing them afresh")
            # a figure shows every solver of the old config: still true if none changed or was dropped
            figures_valid = bool(kept) and not retrained and \
                unchanged_solvers(old, to_dict(cfg)) == set(solver_labels(old))
            stale = [PARTIAL_DIR, "uncertainty"] + ([] if kept else ["recons"]) + ([] if figures_valid else ["figures"])
            for name in stale:
                shutil.rmtree(self.dir / name, ignore_errors=True)
            for name in (RESULTS, SUMMARY, RESOLVED):
                (self.dir / name).unlink(missing_ok=True)
            if kept and previous.get("hash") != h:
                print(f"{self.dir}: configuration changed; reusing {len(kept)} finished item(s) whose solver, data "
                      "and mask settings are unchanged")
        elif previous is not None and not self.done():
            kept = self._earlier_records()  # same config, partial files gone (a fresh clone of committed results)
        finished = kept or self.done()  # what rank0.jsonl must hold besides the borrowed items
        if previous is not None:
            for key, labels in unknown_to(previous, {r.solver for r in finished.values()}).items():
                unknown[key] |= labels
        borrowed = {k: r for k, r in reusable.items() if k not in finished}
        if borrowed:
            print(f"{self.dir}: taking {len(borrowed)} finished item(s) from output.reuse_from")
            kept = {**finished, **borrowed}
        if kept:
            write_text(self._partial, "".join(json.dumps(r.to_json()) + "\n" for r in kept.values()))
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(self.dir / RESOLVED, {"hash": h, "config": to_dict(cfg), **certified(records, unknown)})

    def _previous_run(self) -> dict | None:
        """The resolved config of the run that wrote here: None when none did, {} when it is unknown."""
        resolved = self.dir / RESOLVED
        if resolved.is_file():
            try:
                return json.loads(resolved.read_text())
            except (OSError, json.JSONDecodeError):
                return {}
        if (self.dir / RESULTS).exists() or (self.dir / PARTIAL_DIR).exists():
            return {}
        return None

    def _borrowed(self, cfg: BenchConfig, source, records: dict[str, dict]) -> tuple[dict[str, Record], dict]:
        """The items of the ``output.reuse_from`` folders that ``cfg`` would compute identically (with the same
        weights and resolved settings), relabelled, and per record key the labels those folders recorded nothing
        for."""
        borrowed, unknown = {}, {key: set() for key in RECORDS}
        for src in cfg.output.reuse_from:
            other = ResultStore(src.dir)
            try:
                resolved = json.loads((other.dir / RESOLVED).read_text())
                config = resolved["config"]
            except (OSError, json.JSONDecodeError, KeyError, TypeError):
                raise ConfigError(where(source, f"output.reuse_from: {other.dir} holds no readable {RESOLVED}")) \
                    from None
            stale = changed_records(resolved, records, src.solvers)
            taken = other.reuse_from(config, cfg, src.solvers, source, stale)
            borrowed.update(taken)
            for key, labels in unknown_to(resolved, {r.solver for r in taken.values()}, src.solvers).items():
                unknown[key] |= labels
        return borrowed, unknown

    def undo_fresh_start(self) -> None:
        """A run into a new folder failed before finishing any item: remove its resolved config and empty
        partial folder, so nothing suggests results are there."""
        try:
            if self.done():
                return
        except DataError:
            return
        (self.dir / RESOLVED).unlink(missing_ok=True)
        shutil.rmtree(self.dir / PARTIAL_DIR, ignore_errors=True)

    def collect(self, cfg: BenchConfig, items: list[Item], ds, data_path, env: dict) -> dict:
        """The results dict: every rank's records of ``items`` (all of them must be finished) and of the
        uncertainty maps, with their means and paired differences, the config, ``env`` and the dataset
        ``ds`` (its ``ids`` and ``size``) read from ``data_path``."""
        records = self.done()
        missing = [it.key for it in items if it.key not in records]
        if missing:
            raise DataError(where(self.dir, f"{len(missing)} item(s) missing after the run, e.g. {missing[0]}"))
        rows = [records[it.key].row() for it in items]
        unc_keys = [uncertainty_key(s, lab, r) for s in ds.ids for r in cfg.acquisition.accelerations
                    for lab in uncertainty_labels(cfg)]
        unc = [records[k].row() for k in unc_keys if k in records]
        contrasts = sorted({r["contrast"] for r in rows})
        return {
            "name": cfg.name,
            "config": to_dict(cfg),
            "config_hash": config_hash(cfg),
            **env,
            "dataset": {"path": str(data_path), "size": ds.size, "n_slices": len(ds.ids), "ids": list(ds.ids),
                        "contrasts": contrasts},
            "results": rows,
            "means": report.means(rows, cfg.acquisition.seeds),
            "paired": report.paired(rows, report.pair_list(cfg), cfg.acquisition.seeds),
            **({"failed": report.failed(rows)} if report.failed(rows) else {}),  # absent when none: files as before
            "uncertainty": ({"per_slice": unc, "means": report.uncertainty_means(unc)}
                            if cfg.uncertainty.enabled else None),
        }

    def save(self, results: dict) -> None:
        """Write ``results.json`` and ``summary.md`` (atomically)."""
        write_json(self.dir / RESULTS, results)
        write_text(self.dir / SUMMARY, report.summary_markdown(results))
