"""The acquisitions of a benchmark's ``acquisition:`` section: one per R, their scans per (R, seed)."""
from __future__ import annotations

from pathlib import Path

import torch

from .config import BenchConfig
from ..config import Problems
from ..errors import ConfigError, where
from ..acquisition.base import Acquisition
from ..acquisition.registry import make_acquisition
from ..acquisition.stored import StoredMasks


class AcquisitionBank:
    """The acquisition of each R of a benchmark: generated (``acquisition.kind``) or masks read from
    ``acquisition.file``, every one checked against the grid ``shape`` before anything is written."""

    def __init__(self, cfg: BenchConfig, shape, source=None):
        self.cfg, self.shape = cfg.acquisition, tuple(shape)
        accelerations = [float(r) for r in self.cfg.accelerations]
        if self.cfg.file:
            path = Path(self.cfg.file)
            stored = StoredMasks.from_file(path, self.shape)  # binary, finite, non-empty, on this grid
            if len(accelerations) != 1:
                raise ConfigError(where(path, "a mask file needs exactly one (nominal) acceleration"))
            seeds = set(self.cfg.seeds) | set(cfg.uncertainty.seed_list if cfg.uncertainty.enabled else ())
            bad = [s for s in seeds if not 0 <= s < len(stored)]
            if bad:
                raise ConfigError(where(path, f"mask seeds {bad} index past the file's {len(stored)} masks"))
            stored.acceleration = accelerations[0]
            self.acquisitions = {accelerations[0]: stored}
        else:  # every (R, ACS) sampled once now; every failing R reported
            acs = self.cfg.acs_for(self.shape[1])
            self.acquisitions = {r: make_acquisition(self.cfg.kind, r, acs) for r in accelerations}
            bad = Problems(source, "acquisition")
            key = "acs_lines" if self.cfg.kind == "cartesian" else "accelerations"  # what the config can change
            for acquisition in self.acquisitions.values():
                try:
                    acquisition.sample(self.shape, 0)
                except ConfigError as exc:
                    bad.add(key, f": {exc}")
            bad.raise_any()

    def acquisition(self, acceleration) -> Acquisition:
        return self.acquisitions[float(acceleration)]

    def __call__(self, acceleration, seed) -> torch.Tensor:
        return self.acquisition(acceleration).sample(self.shape, seed)
