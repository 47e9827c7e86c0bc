"""Training throughput of a prior: predicted FLOPs per step, measured samples/s and peak memory -> JSON.

For each training config (``configs/train_*.yaml``) and each patch size (PaDIS) or the whole-image batch (EDM):

* FLOPs of one training step (forward, loss, backward) counted by ``torch.utils.flop_counter.FlopCounterMode``
  on the ``meta`` device, so even the paper models are counted in seconds without running them;
* seconds per step (Adam step included; the first ``--warmup`` steps are not timed), patches or images per
  second, achieved FLOP/s, and peak memory (CUDA ``max_memory_allocated``; on CPU the process's ``ru_maxrss``,
  a lifetime maximum, so it grows over the configs of one invocation).

For PaDIS the probability-weighted means over patch sizes give the expected steps/s of a real run.

    python scripts/bench_train_throughput.py --config configs/train_padis_cpu.yaml configs/train_edm_cpu.yaml \\
        --image-size 128 --out experiments/speed/bench_train_cpu.json
    python scripts/bench_train_throughput.py --config configs/train_padis_s25.yaml --image-size 384 --flops-only
"""
from __future__ import annotations

import argparse
import platform
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from padis_plugin.atomic import write_json
from padis_plugin.config import load_config
from padis_plugin.errors import PadisError
from padis_plugin.prior.network import build_unet, count_parameters
from padis_plugin.prior.precond import EDMPrecond
from padis_plugin.timing import peak_memory_bytes, timed
from padis_plugin.train.config import TrainConfig
from padis_plugin.train.loss import EDMLoss, PatchEDMLoss, edm_weight


def count_step_flops(cfg: TrainConfig, shape) -> int:
    """FLOPs of forward + weighted squared error + backward for one batch of ``shape`` (meta tensors)."""
    with torch.device("meta"):
        net = EDMPrecond(build_unet(cfg.model_config()), cfg.model.sigma_data).train()
        y = torch.zeros(shape)
        sigma = torch.ones(shape[0])
        pos = torch.zeros(shape[0], 2, *shape[2:]) if cfg.kind == "padis" else None
    counter = FlopCounterMode(display=False)
    with counter:
        d = net(y + sigma.view(-1, 1, 1, 1) * y, sigma, pos)
        loss = (edm_weight(sigma) * (d - y).square().sum(dim=(1, 2, 3))).mean()
        loss.backward()
    return int(counter.get_total_flops())


def time_steps(cfg: TrainConfig, n_samples: int, patch_size, image_size: int, steps: int, warmup: int,
               device) -> dict:
    """Run ``warmup + steps`` training steps on random images; seconds per step and peak memory."""
    torch.manual_seed(0)
    net = EDMPrecond(build_unet(cfg.model_config()), cfg.model.sigma_data).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.optim.lr)
    images = torch.randn(8, 2, image_size, image_size, device=device) * 0.3
    g = torch.Generator(device).manual_seed(0)
    if cfg.kind == "padis":
        loss_fn = PatchEDMLoss([patch_size], [1.0], [n_samples], cfg.patch.pad, sigma_data=cfg.model.sigma_data,
                               position_convention=cfg.patch.position_convention)
        step_loss = lambda: loss_fn(net, images, g, patch_size=patch_size, n=n_samples)  # noqa: E731
    else:
        loss_fn = EDMLoss(sigma_data=cfg.model.sigma_data)
        step_loss = lambda: loss_fn(net, images[torch.randint(8, (n_samples,), generator=g, device=device)], g)  # noqa
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.run.precision == "bf16" and device.type == "cuda")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    losses = []

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = step_loss().float().mean()
        loss.backward()
        opt.step()
        losses.append(loss.detach())

    times = [timed(step, device) for _ in range(warmup + steps)][warmup:]
    sec = sum(times) / len(times)
    return {"seconds_per_step": sec, "samples_per_s": n_samples / sec,
            "peak_memory_mib": peak_memory_bytes(device) / 2 ** 20, "final_loss": float(losses[-1])}


def bench_config(path, image_size: int, steps: int, warmup: int, device, flops_only: bool) -> dict:
    cfg = load_config(TrainConfig, path)
    with torch.device("meta"):
        params = count_parameters(build_unet(cfg.model_config()))
    if cfg.kind == "padis":
        rows = [(p, b, q) for p, b, q in zip(cfg.patch.sizes, cfg.patch.batch, cfg.patch.probs)]
    else:
        rows = [(image_size, cfg.run.batch, 1.0)]
    entries = []
    for size, batch, prob in rows:
        entry = {"sample_size": size, "batch": batch, "probability": prob,
                 "flops_per_step": count_step_flops(cfg, (batch, 2, size, size))}
        if not flops_only:
            entry.update(time_steps(cfg, batch, size, image_size, steps, warmup, device))
            entry["achieved_tflops"] = entry["flops_per_step"] / entry["seconds_per_step"] / 1e12
        entries.append(entry)
        print(f"{path}: {cfg.model.name} {size}x{size} x{batch}: {entry['flops_per_step'] / 1e9:.2f} GFLOP/step"
              + ("" if flops_only else f", {entry['seconds_per_step']:.3f} s/step, "
                                       f"{entry['samples_per_s']:.1f} samples/s"), file=sys.stderr)
    mean_flops = sum(e["probability"] * e["flops_per_step"] for e in entries)
    out = {"config": str(path), "kind": cfg.kind, "model": cfg.model.name, "parameters": params,
           "image_size": image_size, "precision": cfg.run.precision, "per_size": entries,
           "expected_flops_per_step": mean_flops}
    if not flops_only:
        mean_sec = sum(e["probability"] * e["seconds_per_step"] for e in entries)
        out["expected_seconds_per_step"] = mean_sec
        out["expected_steps_per_s"] = 1 / mean_sec
        out["expected_samples_per_s"] = sum(e["probability"] * e["batch"] for e in entries) / mean_sec
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", nargs="+", required=True, help="training YAML(s)")
    p.add_argument("--image-size", type=int, default=384, help="training image side N (pad N/4 for patches)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per size")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads on CPU")
    p.add_argument("--flops-only", action="store_true", help="count FLOPs, do not run (paper models on CPU)")
    p.add_argument("--out", default=None, help="JSON file to write")
    args = p.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        results = [bench_config(c, args.image_size, args.steps, args.warmup, device, args.flops_only)
                   for c in args.config]
    except PadisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
              or platform.machine(), "device_type": device.type, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "steps": args.steps, "warmup": args.warmup, "results": results}
    if args.out:
        write_json(args.out, report)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
