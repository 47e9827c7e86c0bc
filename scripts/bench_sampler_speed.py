"""Seconds per slice and peak memory of padis-dps and edm-dps: predicted from FLOPs, then measured.

Prediction: FLOPs of one sampler iteration (denoiser forward + backward to the image, counted by
``torch.utils.flop_counter.FlopCounterMode``) x K x L, divided by the device's measured dense float32 matmul
rate. That is a lower bound: convolutions and small batches run below the matmul rate, and the FFTs of the
forward model are not counted. Measurement: ``--measure`` sampler iterations after one warm-up iteration,
extrapolated linearly to K x L. Weights are random (speed does not depend on them).

    python scripts/bench_sampler_speed.py --size 128 --coils 8 --padis-config padis-tiny padis-small \
        --edm-config edm-tiny edm-small --measure 3 --threads 2 --out experiments/speed/bench_sampler_cpu.json
"""
from __future__ import annotations

import argparse
import platform

import torch
from deepinv.physics import MultiCoilMRI
from torch.utils.flop_counter import FlopCounterMode

from padis_plugin.atomic import write_json
from padis_plugin.acquisition.masks import cartesian_mask
from padis_plugin.prior import EDMDenoiser, EDMPrecond, PaDISDenoiser, build_unet, count_parameters
from padis_plugin.solvers.dps import EDMDPS, PaDISDPS, VEDPS
from padis_plugin.timing import peak_memory_bytes, timed


def matmul_rate(device, n=2048, reps=5) -> float:
    """Achieved float32 FLOP/s of an n x n matmul on ``device`` (best of ``reps``)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    best = min(timed(lambda: a @ b, device) for _ in range(reps))
    return 2 * n ** 3 / best


def problem(size, coils, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    maps = torch.randn(1, coils, size, size, dtype=torch.complex64, generator=g)
    maps = maps / maps.abs().pow(2).sum(1, keepdim=True).sqrt()
    mask = cartesian_mask(size, 4.0, 24, seed=seed)[None, None]
    physics = MultiCoilMRI(mask=mask.to(device), coil_maps=maps.to(device), img_size=(1, 2, size, size),
                           device=device)
    y = physics.A(torch.randn(1, 2, size, size, generator=g).to(device))
    return y, physics


def build_sampler(kind, cfg, args, device):
    torch.manual_seed(0)
    precond = EDMPrecond(build_unet(cfg)).to(device).eval().requires_grad_(False)
    kw = dict(steps=args.steps, inner=args.inner, progress=False, device=device)
    if kind == "padis-dps":
        return PaDISDPS(PaDISDenoiser(precond, patch_size=args.patch, pad=args.pad, max_batch=args.max_batch),
                        patch_size=args.patch, pad=args.pad, **kw), precond
    return EDMDPS(EDMDenoiser(precond), **kw), precond


def iteration_flops(sampler, y, physics, device) -> int:
    """FLOPs of one sampler iteration: denoise, A, SSE and its gradient through the network."""
    x = physics.A_adjoint(y).requires_grad_(True)
    with FlopCounterMode(display=False) as counter:
        d = sampler.denoiser(x, 1.0)
        sse = (y - physics.A(d)).pow(2).sum()
        sse.backward()  # (autograd.grad trips FlopCounterMode's module hooks)
    return int(counter.get_total_flops())


def measure(sampler, y, physics, n, device) -> float:
    """Seconds per iteration over ``n`` iterations (after one warm-up iteration), at the schedule's first level:
    copies of the sampler are given that one level (``sigmas=``) instead of changing the sampler."""
    first = sampler.sigmas[:1]
    kw = dict(zeta=sampler.zeta, noise_convention=sampler.noise_convention, skip_noise=sampler.skip_noise,
              progress=False, device=device, sigmas=first)
    warm, run = (VEDPS(sampler.denoiser, inner=k, **kw) for k in (1, n))
    warm(y, physics, generator=torch.Generator(device=device).manual_seed(0))
    return timed(lambda: run(y, physics, generator=torch.Generator(device=device).manual_seed(0)), device) / n


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--solvers", nargs="+", default=["padis-dps", "edm-dps"])
    p.add_argument("--steps", type=int, default=104, help="K of the predicted/extrapolated schedule")
    p.add_argument("--inner", type=int, default=10, help="L of the predicted/extrapolated schedule")
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--coils", type=int, default=16)
    p.add_argument("--padis-config", nargs="+", default=["padis-paper"], help="one or more model configs")
    p.add_argument("--edm-config", nargs="+", default=["edm-paper"], help="one or more model configs")
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--pad", type=int, default=64)
    p.add_argument("--max-batch", type=int, default=None)
    p.add_argument("--measure", type=int, default=3, help="iterations timed (after 1 warm-up)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", required=True, help="JSON output")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    rate = matmul_rate(device)
    y, physics = problem(args.size, args.coils, device)
    nfe = args.steps * args.inner
    record = {"device": torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor() or "cpu",
              "torch": torch.__version__, "threads": torch.get_num_threads(),
              "settings": {k: v for k, v in vars(args).items() if k != "out"},
              "matmul_flops_per_s": rate, "results": {}}
    runs = [(kind, cfg) for kind in args.solvers
            for cfg in (args.padis_config if kind == "padis-dps" else args.edm_config)]
    for kind, cfg in runs:
        sampler, precond = build_sampler(kind, cfg, args, device)
        flops = iteration_flops(sampler, y, physics, device)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        per_it = measure(sampler, y, physics, args.measure, device)
        peak = peak_memory_bytes(device)
        r = {"model_config": cfg, "parameters": count_parameters(precond), "nfe_per_slice": nfe,
             "flops_per_iteration": flops, "predicted_seconds_per_slice": flops * nfe / rate,
             "measured_iterations": args.measure, "measured_seconds_per_iteration": per_it,
             "extrapolated_seconds_per_slice": per_it * nfe,
             "peak_memory_bytes": int(peak),
             "peak_memory_kind": "torch.cuda.max_memory_allocated" if device.startswith("cuda")
             else "process peak RSS (ru_maxrss, whole process, all runs so far)"}
        record["results"][f"{kind}/{cfg}"] = r
        print(f"{kind} ({cfg}, {r['parameters'] / 1e6:.2f}M params) at {args.size}x{args.size}: "
              f"{flops / 1e9:.2f} GFLOP/iteration -> predicted >= {r['predicted_seconds_per_slice']:.1f} s/slice "
              f"for {nfe} iterations; measured {per_it:.3f} s/iteration over {args.measure} -> "
              f"{r['extrapolated_seconds_per_slice']:.1f} s/slice (extrapolated); peak {peak / 2 ** 20:.0f} MiB")
    write_json(args.out, record)


if __name__ == "__main__":
    main()
