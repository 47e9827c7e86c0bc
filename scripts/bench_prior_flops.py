"""Predict FLOPs of one prior forward (torch FlopCounterMode) and measure forward / forward+backward time and memory.

Usage: python scripts/bench_prior_flops.py --configs padis-small edm-small --batch 4 --out experiments/speed/bench_prior.json
A config runs as ``name`` (PaDIS patch size / EDM image side from --patch / --image) or ``name@SIZExBATCH``.
``--flops-only`` configs are only counted, on the meta device (no memory, no weights): use it for paper sizes.
"""
from __future__ import annotations

import argparse
import platform

import torch
from torch.utils.flop_counter import FlopCounterMode

from padis_plugin.atomic import write_json
from padis_plugin.prior import EDMPrecond, build_unet, count_parameters
from padis_plugin.prior.network import resolve_model_config
from padis_plugin.timing import PeakRSS, timed


def _inputs(cfg, size, batch, device):
    x = torch.randn(batch, 2, size, size, device=device)
    pos = torch.rand(batch, 2, size, size, device=device) * 2 - 1 if cfg["in_channels"] == 4 else None
    return x, torch.full((batch,), 0.7, device=device), pos


def count_flops(name, size, batch, device="meta") -> dict:
    """FLOPs of one forward and one forward+backward (FlopCounterMode counts matmul/conv FLOPs, 2 per MAC)."""
    with torch.device(device):
        pre = EDMPrecond(build_unet(name))
        x, sigma, pos = _inputs(pre.unet.config, size, batch, device)
        with FlopCounterMode(display=False) as fc:
            pre(x, sigma, pos)
        fwd = fc.get_total_flops()
        x.requires_grad_(True)
        with FlopCounterMode(display=False) as fc:
            pre(x, sigma, pos).square().sum().backward()
        both = fc.get_total_flops()
    return {"params": count_parameters(pre), "flops_forward": fwd, "flops_forward_backward": both,
            "flops_forward_per_sample": fwd / batch}


def _timed(fn, device, repeats):
    times = [timed(fn, device) for _ in range(repeats)]
    return min(times), sum(times) / len(times)


def measure(name, size, batch, device, repeats) -> dict:
    torch.manual_seed(0)
    pre = EDMPrecond(build_unet(name)).to(device).eval()
    x, sigma, pos = _inputs(pre.unet.config, size, batch, device)

    def fwd():
        with torch.no_grad():
            pre(x, sigma, pos)

    def fwd_bwd():
        xg = x.detach().requires_grad_(True)  # DPS differentiates through the network w.r.t. its input
        pre(xg, sigma, pos).square().sum().backward()

    out = {}
    for label, fn in (("forward", fwd), ("forward_backward", fwd_bwd)):
        fn()  # warm-up
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            best, mean = _timed(fn, device, repeats)
            peak, how = torch.cuda.max_memory_allocated(device) - base, "cuda max_memory_allocated - allocated before"
        else:
            with PeakRSS() as mem:
                best, mean = _timed(fn, device, repeats)
            peak, how = mem.bytes, "peak RSS above the level before (sampled /proc/self/statm)"
        out[label] = {"seconds_best": best, "seconds_mean": mean, "peak_memory_bytes": peak}
    out["memory_method"] = how
    return out


def _parse(spec, default_patch, default_image, default_batch):
    name, _, rest = spec.partition("@")
    cfg = resolve_model_config(name)
    size = default_patch if cfg["in_channels"] == 4 else default_image
    batch = default_batch
    if rest:
        s, _, b = rest.partition("x")
        size, batch = int(s), int(b or batch)
    return name, size, batch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=["padis-small", "edm-small"])
    ap.add_argument("--flops-only", nargs="*", default=["padis-paper@64x49", "edm-paper@384x1"])
    ap.add_argument("--patch", type=int, default=64, help="patch side for PaDIS configs")
    ap.add_argument("--image", type=int, default=128, help="image side for EDM configs")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    out_path = args.out or f"experiments/speed/bench_prior_{device.type}.json"
    results = {"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
               else platform.processor() or platform.machine(), "torch": torch.__version__,
               "threads": torch.get_num_threads(), "repeats": args.repeats, "measured": [], "flops_only": []}
    for spec in args.configs:
        name, size, batch = _parse(spec, args.patch, args.image, args.batch)
        row = {"config": name, "size": size, "batch": batch, **count_flops(name, size, batch)}
        row.update(measure(name, size, batch, device, args.repeats))
        row["achieved_gflops_forward"] = row["flops_forward"] / row["forward"]["seconds_best"] / 1e9
        results["measured"].append(row)
        print(f"{name} {size}x{size} x{batch}: {row['params']:,} params, {row['flops_forward'] / 1e9:.2f} GFLOP fwd, "
              f"fwd {row['forward']['seconds_best']:.3f} s, fwd+bwd {row['forward_backward']['seconds_best']:.3f} s, "
              f"peak {row['forward_backward']['peak_memory_bytes'] / 2**20:.0f} MiB")
    for spec in args.flops_only:
        name, size, batch = _parse(spec, args.patch, args.image, args.batch)
        row = {"config": name, "size": size, "batch": batch, **count_flops(name, size, batch)}
        results["flops_only"].append(row)
        print(f"{name} {size}x{size} x{batch}: {row['params']:,} params, {row['flops_forward'] / 1e12:.3f} TFLOP fwd, "
              f"{row['flops_forward_backward'] / 1e12:.3f} TFLOP fwd+bwd")
    write_json(out_path, results)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
