"""``deepinv-pnp``: deepinv's own plug-and-play optimisers (HQS, PGD, DRS with a ``PnP`` prior) as a named solver.

It lets a benchmark config put deepinv's stock algorithms in the same table as our samplers, with any of our
priors (``padis``, ``edm``: the diffusion denoiser used as a plain Gaussian denoiser) or a deepinv denoiser
that needs no downloaded weights (``wavelet``, ``tv``). The denoiser strength follows a geometric schedule
from ``sigma_max`` to ``sigma_min`` over the iterations, as in DPIR (Zhang et al., TPAMI 2021), which
converges far better than one fixed level. The solver is the stock deepinv object: it takes no ``generator``;
the bench seeds torch's global RNG for it (``solvers.contract.call_solver``).
"""
from __future__ import annotations

import numpy as np
import torch
from deepinv.models import Reconstructor
from deepinv.optim import DRS, HQS, PGD, PnP
from deepinv.optim.data_fidelity import L2

from ..errors import ConfigError
from .params import typed_params
from .prior_loading import PADIS_PRIOR_KEYS, prior_from_params

ALGORITHMS = {"HQS": HQS, "PGD": PGD, "DRS": DRS}
DENOISERS = ("padis", "edm", "wavelet", "tv")
PNP_PARAMS = {"algorithm": tuple(ALGORITHMS), "denoiser": DENOISERS, "iterations": int, "sigma_max": float,
              "sigma_min": float, "stepsize": float, "wavelet": str, **PADIS_PRIOR_KEYS}
DEFAULTS = {"algorithm": "HQS", "denoiser": "padis", "iterations": 20, "sigma_max": 0.2, "sigma_min": 0.01,
            "stepsize": 50.0, "wavelet": "db4"}


class _CountingDenoiser(torch.nn.Module):
    """The denoiser as deepinv's ``PnP`` calls it, ``D(x, sigma)``, counting calls in ``nfe``."""

    def __init__(self, denoiser):
        super().__init__()
        self.denoiser, self.nfe = denoiser, 0

    def forward(self, x, sigma, *args, **kwargs):
        self.nfe += 1
        return self.denoiser(x, sigma)


def sigma_schedule(sigma_max: float, sigma_min: float, iterations: int) -> list[float]:
    """Geometric denoiser levels from ``sigma_max`` down to ``sigma_min`` (DPIR's schedule)."""
    return np.geomspace(sigma_max, sigma_min, iterations).tolist() if iterations > 1 else [float(sigma_min)]


def deepinv_denoiser(p: dict, device):
    """The denoiser named by ``p["denoiser"]``: one of our priors, or a weight-free deepinv denoiser."""
    if p["denoiser"] in ("padis", "edm"):
        return prior_from_params(p["denoiser"], p, device)
    if p["denoiser"] == "wavelet":
        from deepinv.models import WaveletDenoiser

        return WaveletDenoiser(level=3, wv=p["wavelet"], device=device)
    from deepinv.models import TVDenoiser

    return TVDenoiser(n_it_max=50)


def build_pnp(denoiser, algorithm="HQS", iterations=20, sigma_max=0.2, sigma_min=0.01, stepsize=50.0) -> Reconstructor:
    """deepinv's ``algorithm`` with ``PnP(denoiser)`` and an L2 data term on the caller's physics. The returned
    optimiser reports ``nfe`` (denoiser calls of its last run)."""
    counting = _CountingDenoiser(denoiser)
    algo = ALGORITHMS[algorithm](data_fidelity=L2(), prior=PnP(counting), stepsize=float(stepsize),
                                 sigma_denoiser=sigma_schedule(sigma_max, sigma_min, iterations),
                                 max_iter=int(iterations), early_stop=False)
    return _PnPReconstructor(algo, counting)


class _PnPReconstructor(Reconstructor):
    """A deepinv optimiser as a no-grad reconstructor with ``nfe``; called with ``(y, physics)`` only."""

    def __init__(self, algo, counting):
        super().__init__()
        self.algo, self.counting = algo, counting

    @property
    def nfe(self) -> int:
        return self.counting.nfe

    def forward(self, y, physics, **kwargs):
        self.counting.nfe = 0
        with torch.no_grad():
            return self.algo(y, physics)


def make_deepinv_pnp(params: dict | None = None, device="cpu") -> Reconstructor:
    """Factory for ``deepinv-pnp``: ``algorithm`` (HQS | PGD | DRS), ``denoiser`` (padis | edm | wavelet | tv),
    ``checkpoint`` and patch settings for our priors, ``iterations`` (20), ``sigma_max`` (0.2), ``sigma_min``
    (0.01), ``stepsize`` (50.0: close to a data projection; measured on a validation slice), ``wavelet`` (db4)."""
    p = {**DEFAULTS, **typed_params("deepinv-pnp", params, PNP_PARAMS)}
    if p["iterations"] < 1:
        raise ConfigError(f"solver 'deepinv-pnp': iterations must be >= 1, got {p['iterations']}")
    if not 0 < p["sigma_min"] <= p["sigma_max"]:
        raise ConfigError(f"solver 'deepinv-pnp': need 0 < sigma_min <= sigma_max, got {p['sigma_min']}, "
                          f"{p['sigma_max']}")
    if p["stepsize"] <= 0:
        raise ConfigError(f"solver 'deepinv-pnp': stepsize must be > 0, got {p['stepsize']}")
    if "checkpoint" in (params or {}) and p["denoiser"] not in ("padis", "edm"):
        raise ConfigError(f"solver 'deepinv-pnp': checkpoint is for the padis / edm denoisers, "
                              f"not {p['denoiser']!r}")
    return build_pnp(deepinv_denoiser(p, device), p["algorithm"], p["iterations"], p["sigma_max"], p["sigma_min"],
                     p["stepsize"]).to(device)
