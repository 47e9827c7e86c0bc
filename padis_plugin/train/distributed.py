"""One training process's place in a run: single process by default, one rank of a ``torchrun`` group otherwise."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..errors import ConfigError


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False               # we initialised the process group, so we destroy it

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def setup_distributed(device: str) -> Dist:
    """Single process by default; under torchrun (WORLD_SIZE > 1) join the process group (nccl/gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError(f"run.device={device!r} but CUDA is not available")
    if use_cuda:
        dev = torch.device(device if device.startswith("cuda:") and world == 1 else f"cuda:{local_rank}")
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    owns = world > 1 and not torch.distributed.is_initialized()
    if owns:
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    return Dist(rank, world, local_rank, dev, owns)
