"""Wall time per slice of the fast samplers against VE-DPS, measured in one process on one test slice.

VE-DPS cost is linear in its calls (each a forward and backward pass), so it is timed on ``--dps-calls`` calls
and scaled to the paper's 1040; the fast samplers run their whole schedule. One thread (the CPU protocol).

    python scripts/bench_fast_vs_dps.py outputs/protocol/prepared_128.h5 --slice patient12__study1_T2:4 \
        --out experiments/speed/fast_vs_dps_cpu.json
"""
from __future__ import annotations

import argparse
import json
import platform

import torch

from padis_plugin.atomic import write_json
from padis_plugin.data.prepared import PreparedDataset
from padis_plugin.acquisition import CartesianLines, make_problem
from padis_plugin.solvers.registry import build_solver
from padis_plugin.timing import timed


def seconds_and_nfe(solver, y, physics):
    seconds = timed(lambda: solver(y, physics, generator=torch.Generator().manual_seed(0)), "cpu")
    return seconds, solver.nfe


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data")
    p.add_argument("--slice", required=True)
    p.add_argument("--acceleration", type=float, default=7.0)
    p.add_argument("--dps-calls", type=int, default=40, help="VE-DPS calls actually timed (default 40 = 4 x 10)")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    ds = PreparedDataset(a.data, ids=[a.slice])
    slc = ds[0]
    y, physics, _ = make_problem(slc, CartesianLines(a.acceleration), seed=0)  # ACS: 24 at 384, scaled
    rows = {}
    for prior in ("padis", "edm"):
        inner = 10
        sec, nfe = seconds_and_nfe(build_solver(f"{prior}-dps", {"steps": a.dps_calls // inner, "inner": inner}), y, physics)
        rows[f"{prior}-dps"] = {"timed_calls": nfe, "s_per_call": sec / nfe, "s_per_slice_1040": 1040 * sec / nfe}
        for name, params in ((f"{prior}-dds", {"steps": 50, "gamma": 100.0, "eta": 1.0}),
                             (f"{prior}-dds", {"steps": 100, "gamma": 100.0, "eta": 1.0}),
                             (f"{prior}-daps", {"steps": 50})):
            sec, nfe = seconds_and_nfe(build_solver(name, params), y, physics)
            rows[f"{name} {nfe}"] = {"params": params, "nfe": nfe, "s_per_slice": sec, "s_per_call": sec / nfe}
        print(json.dumps({k: v for k, v in rows.items() if k.startswith(prior)}, indent=1))
    write_json(a.out, {"slice": a.slice, "acceleration": a.acceleration, "machine": platform.processor() or
                       platform.machine(), "threads": 1, "torch": torch.__version__, "rows": rows})


if __name__ == "__main__":
    main()
