"""Where a benchmark process runs: its torchrun rank, its device, and the versions and hardware recorded
with its results."""
from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError


def join_ranks() -> tuple[int, int, int, bool]:
    """(rank, world size, local rank, created): joins torchrun's process group (gloo, used only for
    barriers, so GPU runs need no NCCL) with a long timeout so slow ranks do not break the merge."""
    import torch.distributed as dist
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0, False
    created = False
    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=datetime.timedelta(days=7))
        created = True
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), created


def leave_ranks(created: bool) -> None:
    """Destroy the process group :func:`join_ranks` created (not one the caller had already)."""
    if created:
        import torch.distributed as dist
        dist.destroy_process_group()


class RunGuard:
    """The end of one benchmark run, whatever happens: the folder lock (taken by :meth:`take_lock` once every
    check has passed, so a refused config writes nothing) is released, a fresh single-process run that fails
    leaves no trace in its folder, and the process group :func:`join_ranks` created is left."""

    def __init__(self, store, world: int, created: bool):
        self.store, self.world, self.created = store, world, created
        self.fresh, self.lock = False, None

    def take_lock(self) -> None:
        self.fresh = self.store.is_fresh()
        self.lock = self.store.lock(self.world)

    def __enter__(self) -> "RunGuard":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is not None and self.fresh and self.lock is not None and self.world == 1:
                self.store.undo_fresh_start()
        finally:
            if self.lock is not None:
                self.lock.release()
            leave_ranks(self.created)
        return False


def barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist
        dist.barrier()


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local rank>`` when CUDA is available, else CPU; ``cuda`` -> ``cuda:<local rank>``.
    More ranks than GPUs share them round-robin (rank k on GPU k mod count), so a small network's benchmark
    can run several ranks on one GPU."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda" and torch.cuda.is_available():
        spec = f"cuda:{local_rank % torch.cuda.device_count()}"
    elif spec == "cuda":
        spec = f"cuda:{local_rank}"
    try:
        device = torch.device(spec)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):  # e.g. meta: tensors without data
        raise ConfigError(f"device: invalid device {spec!r} (auto, cpu, cuda or cuda:K)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {spec} requested but CUDA is not available")
        torch.cuda.set_device(device)
    return device


def environment(device: torch.device, world: int) -> dict:
    """Package versions and hardware, recorded in results.json."""
    import deepinv
    from .. import __version__
    cpu, cpu_model = platform.processor() or platform.machine(), {}
    try:  # "model name" may be generic ("AMD EPYC"); family/model tell CPU generations apart
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name":
                cpu = value
            elif key in ("cpu family", "model"):
                cpu_model.setdefault({"cpu family": "cpu_family", "model": "cpu_model"}[key], value)
            elif not line.strip() and cpu_model:
                break  # end of the first processor's block
    except OSError:
        pass
    env = {
        "versions": {"padis_plugin": __version__, "torch": torch.__version__, "deepinv": deepinv.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
        "device": {"type": device.type, "cpu": cpu, "world_size": world, **cpu_model,
                   # the kernel set torch dispatches to: another CPU may round the networks' floats
                   # differently (measured: about 5e-6 dB on a 50-step sampler between two AMD EPYC models)
                   "cpu_capability": torch.backends.cpu.get_cpu_capability()},
    }
    if device.type == "cuda":
        env["device"]["gpu"] = torch.cuda.get_device_name(device)
    return env
