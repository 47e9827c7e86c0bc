"""Recompute some items of a committed results config and compare them with its ``results.json``.

The benchmark's records depend only on the config, the data and the seeds (every item's generator seed is a
hash of the global seed, slice, R and mask seed), so a rerun on the same CPU type must give the committed
numbers bit for bit; on another CPU, float rounding differs at about 1e-6. This script reruns a chosen subset
(slices, solver labels, accelerations) into a scratch folder, never touching the committed one, and reports
per item whether PSNR / SSIM / NRMSE are identical and the largest difference.

  python scripts/check_reproduction.py --config experiments/256_hfs_tuning/config.yaml \
      --ids sub-25_T1:2 --solvers "HFS DDS50 g30" --json experiments/reproduction/reproduction.json

Exit status 1 when an item differs by more than ``--tol`` (default 0: bit for bit).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from padis_plugin.atomic import write_json
from padis_plugin.bench.run import load_bench_config, run_benchmark
from padis_plugin.bench.items import item_key
from padis_plugin.config import load_yaml

METRICS = ("psnr", "ssim", "nrmse")


def _subset_overrides(config_path, ids, labels, accelerations) -> list[str]:
    raw = load_yaml(config_path)
    label = {id(s): s.get("label", s["name"]) for s in raw["solvers"]}  # a solver's label defaults to its name
    missing = sorted(set(labels) - set(label.values()))
    if missing:
        sys.exit(f"{config_path}: no solver labelled {missing}; its labels: {list(label.values())}")
    solvers = [s for s in raw["solvers"] if not labels or label[id(s)] in labels]
    kept = [label[id(s)] for s in solvers]
    overrides = [f"solvers={json.dumps(solvers)}", "pairs=[]", "output.figures=false", "output.save_recons=false",
                 "output.reuse_from=[]", "uncertainty.enabled=false"]  # report settings: no item depends on them
    if raw.get("reference") not in kept:
        overrides.append(f"reference={json.dumps(kept[0])}")
    if ids:
        overrides.append(f"data.ids={json.dumps(ids)}")
    if accelerations:
        overrides.append(f"acquisition.accelerations={json.dumps(accelerations)}")
    return overrides


def compare(committed: list[dict], rerun: list[dict]) -> list[dict]:
    """One row per rerun record: its committed twin's metrics, the largest absolute difference."""
    by_key = {item_key(r["id"], r["solver"], r["R"], r["seed"]): r for r in committed}
    rows = []
    for r in rerun:
        old = by_key.get(item_key(r["id"], r["solver"], r["R"], r["seed"]))
        if old is None:
            sys.exit(f"rerun item {r['id']} / {r['solver']} / R={r['R']} / seed {r['seed']} is not in the "
                     "committed results")
        diff = max(abs(r[m] - old[m]) for m in METRICS)
        rows.append({"id": r["id"], "solver": r["solver"], "R": r["R"], "seed": r["seed"],
                     "identical": all(r[m] == old[m] for m in METRICS), "max_abs_diff": diff,
                     **{f"{m}_committed": old[m] for m in METRICS}, **{f"{m}_rerun": r[m] for m in METRICS}})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="a results config whose output.dir holds committed results")
    p.add_argument("--ids", nargs="+", default=[], help="slice ids to rerun (default: all of the config)")
    p.add_argument("--solvers", nargs="+", default=[], help="solver labels to rerun (default: all)")
    p.add_argument("--accelerations", nargs="+", type=float, default=[], help="R values (default: all)")
    p.add_argument("--tol", type=float, default=0.0, help="largest accepted |difference| (default: 0)")
    p.add_argument("--json", help="write the comparison here (default: print only)")
    args = p.parse_args(argv)

    committed_cfg = load_bench_config(args.config)
    committed_path = committed_cfg.output_dir / "results.json"
    if not committed_path.is_file():
        sys.exit(f"{committed_path}: no committed results to compare with")
    committed = json.loads(committed_path.read_text())
    with tempfile.TemporaryDirectory(prefix="padis-repro-") as scratch:
        cfg = load_bench_config(args.config, _subset_overrides(args.config, args.ids, args.solvers,
                                                               args.accelerations), out=scratch)
        rerun = run_benchmark(cfg, overwrite=True, progress=False, source=args.config)
    rows = compare(committed["results"], rerun["results"])
    for row in rows:
        print(f"{row['id']:28s} {row['solver']:22s} R={row['R']:g}  "
              f"{'identical' if row['identical'] else 'differs'}  max |diff| {row['max_abs_diff']:.3g}")
    report = {"config": args.config, "committed_device": committed["device"], "rerun_device": rerun["device"],
              "tolerance": args.tol,
              "identical": sum(r["identical"] for r in rows), "items": len(rows), "rows": rows}
    print(f"{report['identical']}/{len(rows)} items identical; committed on {committed['device'].get('cpu')}, "
          f"rerun on {rerun['device'].get('cpu')}")
    if args.json:
        write_json(Path(args.json), report)
    return 0 if all(r["max_abs_diff"] <= args.tol for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
