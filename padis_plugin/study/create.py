"""``create``: a blinded k-way forced-choice study from ``padis-bench`` output folders.

A *case* is one (slice, R, mask seed) with a saved reconstruction of every method of one ``--solvers``
group; methods are matched across groups by position (the first solver of every group is role 0, ...), so
``--solvers "PaDIS S=25" "EDM S=25" Wavelet-L1 --solvers "PaDIS S=100" "EDM S=100" Wavelet-L1`` asks the same
three-way question at two training-set sizes, as in the paper. Cases are drawn per stratum in proportion to
what is available (largest remainders), or by fixed quotas (:func:`parse_quota`: the paper's 18 T2 +
12 T1/FLAIR per training-set size is ``contrast=T2:18 contrast=T1|FLAIR:12``), then shuffled; each case's
on-screen order is shuffled too, all from ``seed``. Images are magnitude PNGs on one window per case (the
reference's 99.5th percentile as white by default; the page can widen it up to the brightest pixel of any
image of the case). The key stays in the database.
"""
from __future__ import annotations

import io
import json
import math
import sqlite3
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.files import load_npy, safe_name
from ..errors import ConfigError, DataError, where
from ..metrics import IMAGE_METRICS
from . import db

STRATA = ("contrast", "training_size", "R", "patient")
WHITE_PERCENTILE = 99.5


def recon_path(out, slice_id, label, acceleration, seed) -> Path:
    """Where padis-bench saves a reconstruction (:func:`padis_plugin.bench.store.recon_path`; repeated here so
    the study tool does not import torch; a test checks both agree)."""
    return Path(out) / "recons" / safe_name(slice_id) / f"{safe_name(label)}_R{float(acceleration):g}_seed{seed}.npy"


def reference_path(out, slice_id) -> Path:
    """Where padis-bench saves a slice's reference image (:func:`padis_plugin.bench.store.reference_path`)."""
    return Path(out) / "recons" / safe_name(slice_id) / "reference.npy"


@dataclass
class Case:
    slice_id: str
    R: float
    seed: int
    group: int
    strata: dict
    members: list[dict] = field(default_factory=list)   # per role: {"label", "dir", "metrics"}
    reference_dir: Path | None = None


def read_results(folder) -> dict:
    """The ``results.json`` of one bench output folder, checked to have saved reconstructions."""
    folder = Path(folder)
    path = folder / "results.json"
    if not path.is_file():
        raise DataError(where(folder, "no results.json: not a finished padis-bench output folder"))
    try:
        results = json.loads(path.read_text())
        rows = results["results"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(where(path, f"not a padis-bench results file ({exc})")) from None
    if not (folder / "recons").is_dir() or not any((folder / "recons").rglob("*.npy")):
        raise DataError(where(folder, "no saved reconstructions (recons/ is missing or empty): run padis-bench "
                                      "with output.save_recons: true (the default) and keep recons/"))
    return results


def find_cases(folders, groups, stratify=()) -> tuple[list[Case], list[str]]:
    """Every complete case of the solver ``groups`` in the bench ``folders``, and notes on what was skipped."""
    bad = [s for s in stratify if s not in STRATA]
    if bad:
        raise ConfigError(f"--stratify: unknown key(s) {', '.join(bad)} (choose from {', '.join(STRATA)})")
    sizes = {len(g) for g in groups}
    if len(sizes) != 1 or min(sizes) < 2 or max(sizes) > 9:
        raise ConfigError("--solvers: every group needs the same number of methods, 2 to 9")
    # (slice, R, seed) -> label -> (folder, record); the first folder naming a label for an item wins
    index: dict[tuple, dict] = defaultdict(dict)
    labels_seen: set[str] = set()
    for folder in folders:
        folder = Path(folder)
        for row in read_results(folder)["results"]:
            labels_seen.add(row["solver"])
            index[(row["id"], float(row["R"]), int(row["seed"]))].setdefault(row["solver"], (folder, row))
    unknown = sorted({lab for g in groups for lab in g} - labels_seen)
    if unknown:
        raise ConfigError(f"--solvers: {', '.join(repr(u) for u in unknown)} in none of the results (their "
                          f"solver labels: {', '.join(sorted(labels_seen))})")
    cases, missing = [], Counter()
    for (sid, r, seed), found in sorted(index.items()):
        for gi, group in enumerate(groups):
            absent = [lab for lab in group if lab not in found
                      or not recon_path(found[lab][0], sid, lab, r, seed).is_file()]
            if absent:
                own = set(group) - {lab for g in groups if g is not group for lab in g}
                if own - set(absent):  # a method only this group has is there: a case of it, incomplete
                    missing.update(absent)
                continue
            rows = [found[lab][1] for lab in group]
            sizes_here = sorted({str(x["training_size"]) for x in rows if x.get("training_size") is not None})
            strata = {"contrast": rows[0]["contrast"], "training_size": "/".join(sizes_here) or "-",
                      "R": f"{r:g}", "patient": rows[0].get("patient") or "-"}
            members = [{"label": lab, "dir": str(found[lab][0]),
                        "metrics": {m: found[lab][1].get(m) for m in IMAGE_METRICS}} for lab in group]
            cases.append(Case(sid, r, seed, gi, strata, members))
    notes = [f"{n} otherwise complete case(s) lack a saved reconstruction or result of '{lab}'"
             for lab, n in sorted(missing.items())]
    return cases, notes


def allocate(counts: dict, total: int, rng: np.random.Generator) -> dict:
    """``total`` cases over strata in proportion to ``counts`` (largest remainders, ties broken by ``rng``)."""
    available = sum(counts.values())
    quota = {s: total * n / available for s, n in counts.items()}
    out = {s: math.floor(q) for s, q in quota.items()}
    order = sorted(counts, key=lambda s: (-(quota[s] - out[s]), rng.random()))
    for s in order[:total - sum(out.values())]:
        out[s] += 1
    return out


@dataclass(frozen=True)
class Quota:
    """``count`` cases whose stratum ``key`` is one of ``values``, in every combination of the other strata."""

    key: str
    values: tuple[str, ...]
    count: int


def parse_quota(spec: str) -> Quota:
    """``KEY=VALUE[|VALUE...]:COUNT`` (e.g. ``contrast=T1|FLAIR:12``) as a :class:`Quota`; ConfigError otherwise."""
    key, _, rest = spec.partition("=")
    values, _, count = rest.rpartition(":")
    vals = tuple(v.strip() for v in values.split("|") if v.strip())
    if key.strip() not in STRATA or not vals or not count.strip().isdigit() or int(count) < 1:
        raise ConfigError(f"--quota {spec!r}: expected KEY=VALUE[|VALUE...]:COUNT with KEY one of "
                          f"{', '.join(STRATA)} and COUNT >= 1, e.g. contrast=T1|FLAIR:12")
    return Quota(key.strip(), vals, int(count))


def _quota_strata(cases, n, stratify, quotas) -> dict:
    """Stratum (the quota's group, then the other stratify keys' values) -> (pool, count) for fixed quotas."""
    keys = {q.key for q in quotas}
    if len(keys) != 1 or next(iter(keys)) not in stratify:
        raise ConfigError("--quota: every quota must name the same key, one of --stratify "
                          f"({', '.join(stratify) or 'none'})")
    key = next(iter(keys))
    seen = [v for q in quotas for v in q.values]
    if len(seen) != len(set(seen)):
        raise ConfigError(f"--quota: a {key} value is in more than one quota")
    others = [k for k in stratify if k != key]
    combos = sorted({tuple(c.strata[k] for k in others) for c in cases})
    total = sum(q.count for q in quotas) * len(combos)
    if n != total:
        raise ConfigError(f"--cases {n}, but the quotas ask for {total} ({sum(q.count for q in quotas)} per "
                          f"combination of {', '.join(others) or 'the strata'} x {len(combos)})")
    plan = {}
    for combo in combos:
        for q in quotas:
            pool = [c for c in cases if c.strata[key] in q.values and tuple(c.strata[k] for k in others) == combo]
            label = "|".join(q.values) + "".join(f" {k}={v}" for k, v in zip(others, combo))
            if len(pool) < q.count:
                raise ConfigError(f"--quota {key}={'|'.join(q.values)}:{q.count}: only {len(pool)} case(s) of "
                                  f"{label} have every method's saved reconstruction")
            plan[(q.values, combo)] = (pool, q.count)
    return plan


def sample_cases(cases: list[Case], n: int, stratify, seed: int, quotas=()) -> list[Case]:
    """``n`` cases, stratified by the ``stratify`` keys (in proportion, or by fixed ``quotas``, a list of
    :class:`Quota`), in a shuffled order (deterministic in ``seed``)."""
    if n < 1:
        raise ConfigError("--cases must be at least 1")
    if n > len(cases):
        raise ConfigError(f"--cases {n}, but only {len(cases)} case(s) have every method's saved reconstruction")
    rng = np.random.default_rng(seed)
    if quotas:
        plan = _quota_strata(cases, n, tuple(stratify), list(quotas))
        strata = {k: pool for k, (pool, _) in plan.items()}
        take = {k: count for k, (_, count) in plan.items()}
    else:
        strata = defaultdict(list)
        for c in cases:
            strata[tuple(c.strata[k] for k in stratify)].append(c)
        take = allocate({k: len(strata[k]) for k in sorted(strata)}, n, rng)
    keys = sorted(strata)
    chosen = []
    for k in keys:
        pool = strata[k]
        chosen += [pool[i] for i in sorted(rng.choice(len(pool), size=take[k], replace=False))]
    return [chosen[i] for i in rng.permutation(len(chosen))]


def _png(image: np.ndarray, top: float) -> bytes:
    """8-bit grayscale PNG of ``image`` on [0, top] (no metadata chunks)."""
    from PIL import Image
    grey = np.clip(np.round(image / top * 255.0), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey, mode="L").save(buf, format="PNG")
    return buf.getvalue()


class References:
    """Reference images: ``recons/<slice>/reference.npy`` saved by the bench, else the prepared data file
    (``--data``, or the bench's ``dataset.path`` found from the folder)."""

    def __init__(self, data=None):
        self.data = None if data is None else Path(data)
        self._datasets = {}

    def _prepared(self, folder: Path) -> Path | None:
        if self.data is not None:
            return self.data
        raw = json.loads((folder / "results.json").read_text()).get("dataset", {}).get("path")
        if not raw:
            return None
        for base in (Path.cwd(), folder, *folder.resolve().parents):
            p = (base / raw) if not Path(raw).is_absolute() else Path(raw)
            if p.is_file():
                return p
        return None

    def __call__(self, folder, slice_id) -> np.ndarray:
        folder = Path(folder)
        saved = reference_path(folder, slice_id)
        if saved.is_file():
            return load_npy(saved, "reference image")
        path = self._prepared(folder)
        if path is None or not path.is_file():
            raise DataError(where(folder, f"no reference image for slice '{slice_id}': neither {saved} (saved by "
                                          "padis-bench with output.save_recons) nor the prepared data file; "
                                          "give it with --data PREPARED.h5"))
        if path not in self._datasets:
            from ..data.prepared import PreparedDataset
            self._datasets[path] = PreparedDataset(path)
        ds = self._datasets[path]
        if slice_id not in ds.ids:
            raise DataError(where(path, f"slice '{slice_id}' of {folder} is not in this prepared file"))
        return ds[slice_id].reference


def create_study(folders, groups, n_cases: int, out, stratify=(), seed: int = 0, data=None,
                 question: str = "Which reconstruction is best for diagnosis?", quotas=()) -> dict:
    """Build the study in folder ``out`` (``study.sqlite``); returns a summary (cases per stratum, notes).
    ``quotas``: fixed case counts (:class:`Quota` or ``KEY=VALUE[|VALUE...]:COUNT`` strings) instead of
    proportional sampling. Everything is checked and rendered before the database is written; a failure
    leaves no database."""
    stratify = tuple(stratify)
    groups = [list(g) for g in groups]
    if (Path(out) / db.DB_NAME).exists():
        db.create_database(out)  # raises: never overwrite a study (it may hold answers)
    cases, notes = find_cases(folders, groups, stratify)
    if not cases:
        raise DataError("no case has a saved reconstruction of every method of a --solvers group"
                        + ("; " + "; ".join(notes) if notes else ""))
    quotas = [q if isinstance(q, Quota) else parse_quota(q) for q in quotas]
    chosen = sample_cases(cases, n_cases, stratify, seed, quotas)
    rng = np.random.default_rng([seed, 1])
    refs = References(data)
    rendered = []
    for case in chosen:
        ref = np.abs(refs(case.members[0]["dir"], case.slice_id))
        recons = [np.abs(load_npy(recon_path(m["dir"], case.slice_id, m["label"], case.R, case.seed),
                                  "reconstruction")) for m in case.members]
        if any(x.shape != ref.shape for x in recons):
            raise DataError(f"case {case.slice_id} R={case.R:g} seed {case.seed}: image shapes differ "
                            f"({ref.shape} vs {[x.shape for x in recons]})")
        white = float(np.percentile(ref, WHITE_PERCENTILE)) or 1.0
        top = max(white, max(float(np.nanmax(x)) for x in [ref] + recons))
        order = rng.permutation(len(recons))  # order[p] = role shown at position p + 1
        pngs = [_png(ref, top)] + [_png(np.nan_to_num(recons[role]), top) for role in order]
        rendered.append((case, order, pngs, 255.0 * white / top))

    out = Path(out)
    con = None  # no database was here (checked above): whatever this writes goes again on any failure
    try:
        con = db.create_database(out)
        with db.transaction(con):
            info = {"schema_version": db.SCHEMA_VERSION, "created": time.time(), "seed": seed, "k": len(groups[0]),
                    "groups": groups, "roles": [" / ".join(dict.fromkeys(g[i] for g in groups))
                                                for i in range(len(groups[0]))],
                    "stratify": list(stratify), "question": question,
                    "quotas": [f"{q.key}={'|'.join(q.values)}:{q.count}" for q in quotas],
                    "sources": [str(Path(f).resolve()) for f in folders]}
            con.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                            [(k, json.dumps(v)) for k, v in info.items()])
            for no, (case, order, pngs, white) in enumerate(rendered, start=1):
                con.execute("INSERT INTO cases (case_no, strata, window_lo, window_hi) VALUES (?, ?, ?, ?)",
                            (no, json.dumps(case.strata), 0.0, white))
                con.executemany("INSERT INTO images (case_no, position, png) VALUES (?, ?, ?)",
                                [(no, p, png) for p, png in enumerate(pngs)])
                for p, role in enumerate(order, start=1):
                    m = case.members[role]
                    source = {"dir": m["dir"], "slice": case.slice_id, "R": case.R, "seed": case.seed,
                              "group": case.group, **m["metrics"]}
                    con.execute("INSERT INTO key (case_no, position, role, label, source) VALUES (?, ?, ?, ?, ?)",
                                (no, p, int(role), m["label"], json.dumps(source)))
    except BaseException as exc:
        if con is None and isinstance(exc, ConfigError):
            raise  # "a study database is already here" (made since the check above): not ours to remove
        if con is not None:
            con.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(db.db_path(out)) + suffix).unlink(missing_ok=True)
        if isinstance(exc, sqlite3.Error):  # e.g. "database or disk is full": one line, and the rerun works
            raise DataError(where(db.db_path(out), f"cannot write the study database ({exc}); nothing was "
                                                   "kept")) from None
        raise
    con.close()
    per_stratum = Counter(" ".join(f"{k}={c.strata[k]}" for k in stratify) or "all" for c, *_ in rendered)
    return {"study": str(out), "cases": len(rendered), "available": len(cases), "per_stratum": dict(per_stratum),
            "notes": notes}
