"""Noise-level schedules for diffusion samplers (pure functions, no state)."""
from __future__ import annotations

import torch

from ..errors import ConfigError


def edm_sigmas(K: int, sigma_max: float = 10.0, sigma_min: float = 0.003, rho: float = 7.0,
               dtype=torch.float64) -> torch.Tensor:
    r"""EDM / Karras noise levels (Karras et al. 2022, eq. 5), decreasing from ``sigma_max`` to ``sigma_min``.

    .. math::

        \sigma_i = \Big(\sigma_{\max}^{1/\rho} + \tfrac{i}{K-1}\big(\sigma_{\min}^{1/\rho}
        - \sigma_{\max}^{1/\rho}\big)\Big)^{\rho}, \qquad i = 0, \dots, K-1.

    No trailing zero is appended (the PaDIS-MRI sampler never uses it). ``K = 1`` gives ``[sigma_max]``.

    :param int K: number of noise levels (>= 1).
    :param float sigma_max: first (largest) level, > 0.
    :param float sigma_min: last (smallest) level, 0 < sigma_min <= sigma_max.
    :param float rho: schedule exponent, > 0 (7 in EDM and PaDIS-MRI).
    :return: (K,) tensor of noise levels (float64 by default).
    """
    if int(K) != K or K < 1:
        raise ConfigError(f"edm_sigmas: K must be a positive integer, got {K}")
    if not (0 < sigma_min <= sigma_max) or rho <= 0:
        raise ConfigError(f"edm_sigmas: need 0 < sigma_min <= sigma_max and rho > 0, "
                          f"got sigma_min={sigma_min}, sigma_max={sigma_max}, rho={rho}")
    K = int(K)
    if K == 1:
        return torch.tensor([float(sigma_max)], dtype=dtype)
    i = torch.arange(K, dtype=torch.float64)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    sig = (hi + i / (K - 1) * (lo - hi)) ** rho
    sig[0], sig[-1] = sigma_max, sigma_min  # exact end points despite rounding
    return sig.to(dtype)
