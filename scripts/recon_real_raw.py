"""Reconstruct the real raw 8-coil brain slice (sigpy tutorial data, acquired ~8x undersampled) with each solver.

There is no fully sampled ground truth for this acquisition, so the figure shows images only, no metrics.

    python scripts/recon_real_raw.py /path/to/cartesian_ksp.npy --out experiments/real_raw_8ch/real_raw_8ch.png \
        [--padis-checkpoint padis-s25 --edm-checkpoint edm-s25 --steps 50 --inner 4]
    python scripts/recon_real_raw.py /path/to/cartesian_ksp.npy --size 256 --sampler dds --steps 50 \
        --gamma 30 --padis-checkpoint padis-s25-256 --edm-checkpoint edm-s25-256 --out experiments/real_raw_8ch/real_raw_8ch_256.png
    python scripts/recon_real_raw.py /path/to/cartesian_ksp.npy --size 256 --sampler dds --steps 50 --gamma 100 \
        --padis-tau-scale 0.25 --edm-tau-scale 0.5 --padis-checkpoint padis-s25-256 --edm-checkpoint edm-s25-256 \
        --out experiments/real_raw_8ch/real_raw_8ch_256_tau.png
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from padis_plugin.acquisition import AcquiredMask, make_problem
from padis_plugin.atomic import write_json
from padis_plugin.data.prepare import prepare
from padis_plugin.data.prepared import PreparedDataset
from padis_plugin.data.raw_ingest import ingest_npy_kspace
from padis_plugin.bench.figures import unreferenced_figure
from padis_plugin.metrics import to_complex_numpy
from padis_plugin.solvers.registry import build_solver
from padis_plugin.solvers.contract import call_solver


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("npy", type=Path, help="raw (coils, ky, kx) complex k-space .npy")
    parser.add_argument("--out", type=Path, default=Path("experiments/real_raw_8ch/real_raw_8ch.png"))
    parser.add_argument("--size", type=int, default=192, help="prepared grid N (crop/pad the 230 x 180 matrix)")
    parser.add_argument("--padis-checkpoint", default=None)
    parser.add_argument("--edm-checkpoint", default=None)
    parser.add_argument("--sampler", choices=("dps", "dds"), default="dps", help="VE-DPS or the fast DDS sampler")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--inner", type=int, default=4, help="VE-DPS inner iterations (dps only)")
    parser.add_argument("--zeta", type=float, default=None)
    parser.add_argument("--gamma", type=float, default=None, help="DDS data weight (dds only; default: the factory's)")
    parser.add_argument("--padis-tau-scale", type=float, default=None,
                        help="DDS noise-aware weight for PaDIS: tau auto times this (dds only; default: constant gamma)")
    parser.add_argument("--edm-tau-scale", type=float, default=None, help="the same for EDM")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        raw = ingest_npy_kspace(args.npy, Path(tmp) / "sigpy_brain_8ch.h5", patient_id="sigpy-brain",
                                acquisition="AXT1")
        prepared = prepare(raw, Path(tmp) / "prepared.h5", size=args.size, slices="all", progress=False)
        slc = PreparedDataset(prepared)[0]
    y, physics, _ = make_problem(slc, AcquiredMask(slc))  # the scan's own Poisson-disc mask
    solvers = [("zero-filled", {}), ("sense", {}), ("wavelet-l1", {})]
    if args.sampler == "dps":
        common = {"steps": args.steps, "inner": args.inner, **({"zeta": args.zeta} if args.zeta is not None else {})}
    else:
        common = {"steps": args.steps, **({"gamma": args.gamma} if args.gamma is not None else {})}
    for prior, ckpt, tau_scale in (("edm", args.edm_checkpoint, args.edm_tau_scale),
                                   ("padis", args.padis_checkpoint, args.padis_tau_scale)):
        if ckpt:
            noise = {"tau": "auto", "tau_scale": tau_scale} if tau_scale is not None and args.sampler == "dds" else {}
            solvers.append((f"{prior}-{args.sampler}", {"checkpoint": ckpt, **common, **noise}))
    images, record = {}, {"input": str(args.npy), "grid": args.size, "sampled_fraction":
                          float(np.mean(slc.acquired_mask)), "solvers": {}}
    for name, params in solvers:
        solver = build_solver(name, params)
        start = time.perf_counter()
        x_hat = call_solver(solver, y, physics, torch.Generator().manual_seed(0))
        images[name] = np.abs(to_complex_numpy(x_hat[0].detach()))
        record["solvers"][name] = {"params": params, "seconds": time.perf_counter() - start,
                                   "nfe": int(getattr(solver, "nfe", 0))}
        print(f"{name}: {record['solvers'][name]['seconds']:.1f} s")
    unreferenced_figure(args.out, list(images.items()), slc.acquired_mask,  # centred k-space sampling pattern
                        title="Real raw 8-coil brain slice (sigpy tutorial data): no ground truth, images only",
                        vmax=float(np.percentile(images["sense"], 99.5)), mask_label="acquired mask")
    write_json(args.out.with_suffix(".json"), record)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
