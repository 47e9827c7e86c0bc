"""The acquisitions of a benchmark's ``masks`` section: one per R, their masks per (R, seed)."""
from __future__ import annotations

from pathlib import Path

import torch

from .config import BenchConfig
from ..config import Problems
from ..errors import ConfigError, where
from ..acquisition.base import Acquisition
from ..acquisition.registry import make_acquisition
from ..acquisition.stored import StoredMasks


class MaskBank:
    """Masks per (R, seed) of a benchmark: generated (``masks.kind``) or read from ``masks.file``, every one
    checked against the grid ``shape`` before anything is written."""

    def __init__(self, cfg: BenchConfig, shape, source=None):
        self.cfg, self.shape = cfg.masks, tuple(shape)
        accelerations = [float(r) for r in cfg.masks.accelerations]
        if cfg.masks.file:
            path = Path(cfg.masks.file)
            stored = StoredMasks.from_file(path, self.shape)  # binary, finite, non-empty, on this grid
            if len(accelerations) != 1:
                raise ConfigError(where(path, "a mask file needs exactly one (nominal) acceleration"))
            seeds = set(cfg.masks.seeds) | set(cfg.uncertainty.seed_list if cfg.uncertainty.enabled else ())
            bad = [s for s in seeds if not 0 <= s < len(stored)]
            if bad:
                raise ConfigError(where(path, f"mask seeds {bad} index past the file's {len(stored)} masks"))
            stored.acceleration = accelerations[0]
            self.acquisitions = {accelerations[0]: stored}
        else:  # every (R, ACS) sampled once now; every failing R reported
            self.acquisitions = {r: make_acquisition(cfg.masks.kind, r, self.acs_lines) for r in accelerations}
            bad = Problems(source, "masks")
            key = "acs_lines" if cfg.masks.kind == "cartesian" else "accelerations"  # what the config can change
            for acquisition in self.acquisitions.values():
                try:
                    acquisition.sample(self.shape, 0)
                except ConfigError as exc:
                    bad.add(key, f": {exc}")
            bad.raise_any()

    @property
    def acs_lines(self) -> int:
        return self.cfg.acs_for(self.shape[1])

    def acquisition(self, acceleration) -> Acquisition:
        return self.acquisitions[float(acceleration)]

    def __call__(self, acceleration, seed) -> torch.Tensor:
        return self.acquisition(acceleration).sample(self.shape, seed)
