"""The recommended reconstruction modes, chosen from measurement (``experiments/256_frontier_validation/config.yaml``,
the validation patients at 256, R = 4 and 7) by a stated rule:

* ``best``: the best point estimate, the highest mean PSNR over R = 4 and 7 (a tie, within 0.1 dB, goes to
  the better SSIM);
* ``fast``: the fastest mode within 0.5 dB of it;
* ``sample``: a posterior sample, for uncertainty (DDS with the noise-aware data weight; ``samples: K`` gives
  the mean of K draws and their per-pixel spread).

A point estimate (plug-and-play) beats a posterior sample in PSNR: a sample's squared error is up to twice the
posterior mean's. ``configs/recommended_256.yaml`` runs each prior's ``best`` mode beside wavelet-L1; the demo
and ``padis-recon`` use them too. The checkpoint is the shipped prior trained for the data's grid.
"""
from __future__ import annotations

from .errors import ConfigError

#: mode -> prior kind -> (registered solver, parameters without the checkpoint). The algorithms' defaults are
#: their tuned settings (:mod:`padis_plugin.solvers.settings`), so a mode names only where it departs from them.
MODES: dict[str, dict[str, tuple[str, dict]]] = {
    "best": {   # PaDIS: DRS40 33.84 dB, DRS20 33.71, HQS40 33.22; EDM: DRS20 31.83, HQS20 31.43 (mean of R = 4, 7)
        "padis": ("pnp", {}),                               # DRS, 40 iterations
        "edm": ("pnp", {}),                                 # DRS, 20 iterations
    },
    "fast": {   # PaDIS DRS20: -0.13 dB in 57% of the time; EDM HQS20: -0.40 dB in 89% of the time
        "padis": ("pnp", {"iterations": 20}),
        "edm": ("pnp", {"algorithm": "HQS"}),
    },
    "sample": {  # DDS, 50 levels, the noise-aware data weight (tau auto; tau_scale 0.25 PaDIS, 0.5 EDM)
        "padis": ("dds", {}),
        "edm": ("dds", {}),
    },
}
PNP = "pnp"  # the modes' plug-and-play solver: its length is "iterations", a sampler's "steps"


def shipped_prior(kind: str, size: int) -> str:
    """The shipped prior of ``kind`` trained for the grid nearest ``size``."""
    from .prior.families import get_family

    return get_family(kind).shipped_for(size)


def recommended(kind: str = "padis", mode: str = "best", checkpoint=None, size: int = 256) -> tuple[str, dict]:
    """``(solver name, params)`` of the recommended ``mode`` for a prior ``kind``; ``checkpoint`` (default: the
    shipped prior for grid ``size``)."""
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; modes: {sorted(MODES)}")
    if kind not in MODES[mode]:
        raise ConfigError(f"no recommended {mode!r} mode for prior {kind!r}; priors: {sorted(MODES[mode])}")
    name, params = MODES[mode][kind]
    return name, {"checkpoint": checkpoint or shipped_prior(kind, size), **params}
