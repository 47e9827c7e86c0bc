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


def hfs_vp_sigmas(N: int, beta_min: float = 0.1, beta_max: float = 20.0, eps: float = 1e-3,
                  dtype=torch.float64) -> torch.Tensor:
    r"""The released HFS-SDE time grid :math:`t_i` = linspace(1, eps, N) of the VP-SDE (beta 0.1 .. 20) mapped to
    VE noise levels :math:`\sigma_i = \sqrt{1 - \alpha_i^2}/\alpha_i`, :math:`\alpha = \exp(-t^2(\beta_1 - \beta_0)/4
    - t\beta_0/2)` (about 152 at t = 1 and 0.0105 at t = 1e-3).
    """
    if int(N) != N or N < 1:
        raise ConfigError(f"hfs_vp_sigmas: N must be a positive integer, got {N}")
    t = torch.linspace(1.0, eps, int(N), dtype=torch.float64)
    log_alpha = -0.25 * t ** 2 * (beta_max - beta_min) - 0.5 * t * beta_min
    return (torch.expm1(-2 * log_alpha).sqrt()).to(dtype)
