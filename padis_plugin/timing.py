"""Wall-clock timing and peak memory for the measurement scripts (``scripts/bench_*.py``).

CUDA runs asynchronously, so every timed region is bracketed by :func:`sync`. Peak memory on CUDA is
``torch.cuda.max_memory_allocated``; on CPU either the process's lifetime peak RSS (``ru_maxrss``) or, with
:class:`PeakRSS`, the peak above the level before a block (sampled, Linux ``/proc``).
"""
from __future__ import annotations

import os
import threading
import time

import torch


def sync(device) -> None:
    """Wait for queued CUDA work on ``device`` (a no-op elsewhere)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device) -> float:
    """Seconds ``fn()`` takes on ``device``, queued CUDA work before and after included."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def process_peak_rss() -> int:
    """Peak resident memory of this process over its lifetime, in bytes: Linux's ``VmHWM``, else ``ru_maxrss``
    (KiB on Linux). ``ru_maxrss`` survives ``execve``: a child started from a large parent reports the parent's
    peak until it exceeds it; ``VmHWM`` starts afresh."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource  # Unix only: imported where used

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_memory_bytes(device) -> int:
    """CUDA: ``max_memory_allocated`` since the last reset; CPU: :func:`process_peak_rss`."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return process_peak_rss()


def current_rss() -> int:
    """Resident memory of this process now, in bytes (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Peak resident memory above the starting level while the block runs (``bytes``; sampled every 2 ms, Linux):
    unlike ``ru_maxrss`` it does not carry the peaks of earlier runs in the same process."""

    def __enter__(self) -> "PeakRSS":
        self.base = self.peak = current_rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss())
            time.sleep(0.002)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss())
        self.bytes = self.peak - self.base
