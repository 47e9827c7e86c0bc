"""Training state outside the weights: random states (saved and restored so a resumed run continues step for
step), per-rank seeds, the EMA update and the stop-on-signal flag."""
from __future__ import annotations

import signal
import threading

import numpy as np
import torch


# --------------------------------------------------------------------------------------- random states
def rng_tensors(gens: dict[str, torch.Generator], device: torch.device) -> tuple[dict[str, torch.Tensor], dict]:
    """Every random state of this process as uint8/int64 tensors plus JSON (numpy's scalars)."""
    t = {name: g.get_state() for name, g in gens.items()}
    t["torch_cpu"] = torch.get_rng_state()
    if device.type == "cuda":
        t["torch_cuda"] = torch.cuda.get_rng_state(device)
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    t["numpy_keys"] = torch.from_numpy(keys.astype(np.int64))
    return t, {"numpy": [kind, int(pos), int(has_gauss), float(cached)]}


def set_rng(t: dict[str, torch.Tensor], meta: dict, gens: dict[str, torch.Generator], device: torch.device):
    """Restore what :func:`rng_tensors` captured (``gens`` in place, torch's and numpy's global states)."""
    for name, g in gens.items():
        g.set_state(t[name].cpu())
    torch.set_rng_state(t["torch_cpu"].cpu())
    if device.type == "cuda" and "torch_cuda" in t:
        torch.cuda.set_rng_state(t["torch_cuda"].cpu(), device)
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, t["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))


def rank_seed(seed: int, rank: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(rank)]).generate_state(1)[0])


# ------------------------------------------------------------------------------------------------- EMA
def update_ema(ema: torch.nn.Module, net: torch.nn.Module, beta: float) -> None:
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), net.parameters()):
            pe.lerp_(p.detach().to(pe.dtype), 1.0 - beta)
        for be, b in zip(ema.buffers(), net.buffers()):
            be.copy_(b)


# ------------------------------------------------------------------------------------------------ stop
class StopFlag:
    """SIGINT/SIGTERM -> finish the current step, checkpoint, stop (a second signal interrupts at once)."""

    def __init__(self):
        self.raised = False
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.raised:
            raise KeyboardInterrupt
        self.raised = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
