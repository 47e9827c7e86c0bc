"""Randomness shared by every sampler and denoiser: one normal-draw helper and one way to hand a generator on.

A *generator spec* is ``None`` (torch's global RNG), one :class:`torch.Generator`, or a list of them with one per
slice of the batch: then slice ``b`` draws only from ``generator[b]``, so a batch equals separate runs.
Generators may live on another device than the tensors (a CPU generator drives a CUDA run reproducibly).
"""
from __future__ import annotations

import inspect

import torch

from .errors import ConfigError


def is_per_slice(generator) -> bool:
    """True for a list/tuple of generators (one per slice of the batch)."""
    return isinstance(generator, (list, tuple))


def check_batch(generator, batch: int, who: str) -> None:
    """A per-slice generator list must have one generator per slice."""
    if is_per_slice(generator) and len(generator) != batch:
        raise ConfigError(f"{who}: got {len(generator)} generators for a batch of {batch}")


def randn(shape, generator=None, device=None, dtype=torch.float32) -> torch.Tensor:
    """Standard normal tensor of ``shape`` on ``device``, drawn from the generator spec (see module doc)."""
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    if isinstance(generator, torch.Generator):
        return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)
    check_batch(generator, shape[0], "randn")
    return torch.cat([torch.randn((1, *shape[1:]), generator=g, device=g.device, dtype=dtype).to(device)
                      for g in generator])


def randn_like(x: torch.Tensor, generator=None) -> torch.Tensor:
    return randn(x.shape, generator, x.device, x.dtype)


def _takes_generator(denoiser) -> bool:
    try:
        return "generator" in inspect.signature(getattr(denoiser, "forward", denoiser)).parameters
    except (TypeError, ValueError):
        return False


def denoise_fn(denoiser, generator=None):
    """Callable ``(x, sigma) -> D(x, sigma)`` that gives a random denoiser (patch offsets, pad noise) the
    sampler's generator through its ``generator=`` keyword, without changing the denoiser.

    With one generator per slice, each slice is denoised in its own call with its own generator, so a batch
    equals separate runs for the patch prior too (its tiling offset is drawn once per call). A denoiser without
    a ``generator`` keyword is called as it is.
    """
    if generator is None or not _takes_generator(denoiser):
        return denoiser
    if isinstance(generator, torch.Generator):
        return lambda x, sigma: denoiser(x, sigma, generator=generator)

    def per_slice(x, sigma):
        check_batch(generator, x.shape[0], "denoise_fn")
        sig = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
        sig = sig.expand(x.shape[0]) if sig.numel() == 1 else sig
        return torch.cat([denoiser(x[b:b + 1], sig[b:b + 1], generator=g) for b, g in enumerate(generator)])

    return per_slice


def first_generator(generator):
    """One generator for code that draws a single stream per call (e.g. a wrapped deepinv sampler)."""
    return generator[0] if is_per_slice(generator) else generator
