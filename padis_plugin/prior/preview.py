"""Unconditional preview samplers of the training loop (one per prior family, see :mod:`.families`)."""
from __future__ import annotations

import torch

from .schedules import edm_sigmas


@torch.no_grad()
def edm_heun_sample(denoiser, shape, steps: int = 18, generator: torch.Generator | None = None,
                    sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, device="cpu",
                    reference=None):
    """Deterministic EDM sampler (Karras et al. 2022, Algorithm 1: Heun, Karras sigma schedule) for previews.
    ``reference`` is ignored (the HFS preview takes its low band from it)."""
    sigmas = edm_sigmas(steps, sigma_max, sigma_min, rho).tolist() + [0.0]
    x = torch.randn(shape, generator=generator, device=generator.device if generator else device).to(device)
    x = x * sigmas[0]
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        d = (x - denoiser(x, s, generator=generator)) / s
        x_next = x + (s_next - s) * d
        if s_next > 0:
            d2 = (x_next - denoiser(x_next, s_next, generator=generator)) / s_next
            x_next = x + (s_next - s) * 0.5 * (d + d2)
        x = x_next
    return x


@torch.no_grad()
def hfs_heun_sample(denoiser, shape, steps: int = 18, generator: torch.Generator | None = None,
                    sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, device="cpu",
                    reference=None):
    r"""Algorithm 1 of Karras et al. (2022) in the high band only: start from :math:`P x_{ref} + \sigma_0 Q n`,
    ODE direction :math:`Q(x - D(x, \sigma))/\sigma`, so the low band stays that of ``reference`` (1, C, H, W)
    (zeros when None). ``denoiser.band_width`` sets the band."""
    from .hfs import high_pass, low_pass

    w = denoiser.band_for(shape[-1])
    sigmas = edm_sigmas(steps, sigma_max, sigma_min, rho).tolist() + [0.0]
    n = torch.randn(shape, generator=generator, device=generator.device if generator else device).to(device)
    low = low_pass(reference.to(device).expand(shape), w) if reference is not None else 0.0
    x = low + sigmas[0] * high_pass(n, w)
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        d = high_pass(x - denoiser(x, s, generator=generator), w) / s
        x_next = x + (s_next - s) * d
        if s_next > 0:
            d2 = high_pass(x_next - denoiser(x_next, s_next, generator=generator), w) / s_next
            x_next = x + (s_next - s) * 0.5 * (d + d2)
        x = x_next
    return x
