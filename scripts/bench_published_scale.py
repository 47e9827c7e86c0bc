"""Published priors at their real scale on this CPU: export, import, one denoiser call, a 3-step DDS, a DPS call.

Paper-size networks (the published PaDIS-MRI patch prior, 54.4 M parameters, and the FastMRI-EDM whole-image
prior, 65.5 M) with random weights are written in the published snapshot format by the test helper
(``tests/snapshot_format.py``), imported back with ``padis-import``'s code path, and run on a 384 x 384, 16-coil
problem (speed does not depend on the weights or the data). Each measurement runs in its own process, so its
peak resident memory is its own. Projections for DDS-50 and the 1040-call VE-DPS use the measured seconds per
call on this CPU, and FLOPs for the GPU (``bench_prior_flops.py``: 8.1 TFLOP per PaDIS forward on 49 patches of
64 x 64, 1.2 TFLOP per EDM forward at 384 x 384; a DPS call differentiates only with respect to the image, about
twice a forward) at an assumed 40% of an H100's 67 TFLOP/s dense float32 (no TF32).

    OMP_NUM_THREADS=1 python scripts/bench_published_scale.py --out experiments/published_scale/published_scale_cpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
H100_FP32 = 67e12  # dense float32 FLOP/s of an H100 SXM (no TF32)
GPU_EFFICIENCY = 0.4
ASSUMPTIONS = (f"H100 from FLOPs at {GPU_EFFICIENCY:.0%} of {H100_FP32 / 1e12:.0f} TFLOP/s float32; a DPS call "
               "(gradient with respect to the image only) counted as two forwards")
TFLOP = {"padis": {"forward": 8.1e12, "dps_call": 16.2e12}, "edm": {"forward": 1.2e12, "dps_call": 2.4e12}}


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores, torch {__import__('torch').__version__}"


def export(kind: str, work: Path) -> Path:
    """Write a paper-size snapshot with random weights (once) and import it; the checkpoint stem."""
    sys.path.insert(0, str(ROOT / "tests"))
    import snapshot_format as sf  # the test helper that writes the published format

    from padis_plugin import import_published

    stem = work / f"{kind}-paper-imported"
    if stem.with_suffix(".json").is_file():
        return stem
    if kind == "padis":
        b = sf.Builder(0)
        net = sf.precond(b, sf.songunet(b, img_resolution=576, in_channels=4, out_channels=2, model_channels=128,
                                        channel_mult=(2, 2, 2), num_blocks=4, channel_mult_emb=4), patch=True)
    else:
        b = sf.Builder(1, module_src="YAMIN = 1\n", yamin=True)
        net = sf.precond(b, sf.songunet(b, img_resolution=384, in_channels=2, out_channels=2, model_channels=128,
                                        channel_mult=(1, 1, 2, 2, 2, 2, 2), num_blocks=2, attn_resolutions=(12,),
                                        channel_mult_emb=4), patch=False)
    pkl = sf.write_snapshot(work / f"{kind}-paper.pkl", net)
    t0 = time.perf_counter()
    import_published(pkl, out=stem)
    print(f"{kind}: exported {pkl.stat().st_size / 2**20:.0f} MiB, imported in {time.perf_counter() - t0:.1f} s",
          flush=True)
    return stem


def problem(size=384, coils=16, seed=0):
    import torch
    from deepinv.physics import MultiCoilMRI

    from padis_plugin.acquisition.masks import cartesian_mask

    g = torch.Generator().manual_seed(seed)
    maps = torch.randn(1, coils, size, size, dtype=torch.complex64, generator=g)
    maps = maps / maps.abs().pow(2).sum(1, keepdim=True).sqrt()
    mask = cartesian_mask(size, 7.0, 24, seed=seed)[None, None]
    physics = MultiCoilMRI(mask=mask, coil_maps=maps, img_size=(1, 2, size, size))
    return physics.A(torch.randn(1, 2, size, size, generator=g)), physics


def job(kind: str, what: str, threads: int, work: Path, max_batch: int | None) -> dict:
    import torch

    from padis_plugin import load_prior
    from padis_plugin.prior.network import count_parameters
    from padis_plugin.solvers.dds import DDS
    from padis_plugin.timing import PeakRSS, process_peak_rss

    torch.set_num_threads(threads)
    prior = load_prior(export(kind, work))
    if kind == "padis":
        prior = prior.with_settings(max_batch=max_batch)
    params = count_parameters(prior.precond)
    y, physics = problem()
    g = torch.Generator().manual_seed(0)
    x = physics.A_adjoint(y)
    out = {"prior": kind, "what": what, "threads": threads, "parameters": params,
           "max_batch": max_batch if kind == "padis" else None}
    loaded = process_peak_rss()
    peak = PeakRSS().__enter__()
    t0 = time.perf_counter()
    if what == "forward":
        with torch.no_grad():
            prior(x, 1.0, generator=g)
        out["seconds"] = time.perf_counter() - t0
    elif what == "dds3":
        dds = DDS(prior, steps=3, gamma=100.0, eta=1.0, progress=False)
        with torch.no_grad():
            xh = dds(y, physics, generator=g)
        out["seconds"] = time.perf_counter() - t0
        out["seconds_per_step"] = out["seconds"] / 3
        out["finite"] = bool(torch.isfinite(xh).all())
    elif what == "dps_call":  # one VE-DPS iteration: denoise, residual, gradient through the prior
        xi = x.clone().requires_grad_(True)
        x0 = prior(xi, 1.0, generator=g)
        (physics.A(x0) - y).square().sum().sqrt().backward()
        out["seconds"] = time.perf_counter() - t0
        out["finite"] = bool(torch.isfinite(xi.grad).all())
    peak.__exit__(None, None, None)
    out["peak_rss_gib"] = process_peak_rss() / 2 ** 30          # the whole process (prior loaded, problem built)
    out["loaded_rss_gib"] = loaded / 2 ** 30                     # peak before the measured work
    out["work_rss_gib"] = peak.bytes / 2 ** 30                   # peak of the measured work above its start
    return out


def projections(results: list[dict]) -> dict:
    proj = {}
    for kind in ("padis", "edm"):
        rows = {(r["what"], r["threads"]): r for r in results if r["prior"] == kind}
        entry = {}
        for threads in (1, 2):
            if ("dds3", threads) in rows:
                entry[f"dds50_cpu_{threads}thread_hours"] = 50 * rows[("dds3", threads)]["seconds_per_step"] / 3600
            if ("dps_call", threads) in rows:
                entry[f"dps1040_cpu_{threads}thread_hours"] = 1040 * rows[("dps_call", threads)]["seconds"] / 3600
        rate = H100_FP32 * GPU_EFFICIENCY
        entry["dds50_h100_seconds_from_flops"] = 50 * TFLOP[kind]["forward"] / rate
        entry["dps1040_h100_seconds_from_flops"] = 1040 * TFLOP[kind]["dps_call"] / rate
        proj[kind] = entry
    return proj


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="experiments/published_scale/published_scale_cpu.json")
    ap.add_argument("--work", default=None, help="folder for the snapshots (default: a temporary folder)")
    ap.add_argument("--max-batch", type=int, default=16, help="PaDIS patches per network call")
    ap.add_argument("--jobs", default="padis:forward:1,padis:forward:2,padis:dds3:2,padis:dps_call:2,"
                                      "edm:forward:1,edm:forward:2,edm:dds3:2,edm:dps_call:2")
    ap.add_argument("--job", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--update", action="store_true",
                    help="keep the results already in --out and replace only those of the jobs run now")
    ap.add_argument("--reproject", action="store_true", help="recompute the projections of --out from its results")
    args = ap.parse_args()
    if args.reproject:
        from padis_plugin.atomic import write_json

        data = json.loads(Path(args.out).read_text())
        data["projections"] = projections([r for r in data["results"] if "failed" not in r])
        data["assumptions"] = ASSUMPTIONS
        data["machine"] = machine()
        write_json(Path(args.out), data)
        return
    work = Path(args.work or tempfile.mkdtemp(prefix="padis-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.job:
        kind, what, threads = args.job.split(":")
        print("RESULT " + json.dumps(job(kind, what, int(threads), work, args.max_batch)), flush=True)
        return
    for kind in ("padis", "edm"):
        export(kind, work)
    results = []
    if args.update and Path(args.out).is_file():
        rerun = {tuple(spec.split(":")) for spec in args.jobs.split(",")}
        results = [r for r in json.loads(Path(args.out).read_text())["results"]
                   if (r.get("prior"), r.get("what"), str(r.get("threads"))) not in rerun]
    for spec in args.jobs.split(","):
        env = {**os.environ, "OMP_NUM_THREADS": spec.split(":")[2]}
        proc = subprocess.run([sys.executable, __file__, "--job", spec, "--work", str(work),
                               "--max-batch", str(args.max_batch)], env=env, capture_output=True, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(f"{spec}: failed\n{proc.stderr[-2000:]}", flush=True)
            results.append({"job": spec, "failed": proc.stderr.strip().splitlines()[-1:]})
            continue
        results.append(json.loads(lines[-1][7:]))
        print(json.dumps(results[-1]), flush=True)
    from padis_plugin.atomic import write_json

    write_json(Path(args.out), {
        "machine": machine(),
        "problem": "384 x 384, 16 coils, R = 7, ACS 24; random weights and data",
        "padis_settings": {"patch_size": 64, "pad": 64, "patches_per_call": 49, "max_batch": args.max_batch},
        "results": results, "projections": projections([r for r in results if "failed" not in r]),
        "assumptions": ASSUMPTIONS})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
