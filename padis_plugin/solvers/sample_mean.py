"""Posterior mean from K samples: every sampler's ``forward`` draws ``samples`` independent posterior samples and
returns their mean, keeping the per-pixel standard deviation.

A posterior sample's squared error is up to twice the posterior mean's (the sample's error is the mean's plus an
independent draw of the same spread), so the mean of K draws is the better point estimate and their spread is the
uncertainty map. Draw k of slice b uses its own generator, seeded from slice b's generator (:func:`draw_generators`),
so the result is a function of the caller's generator alone; ``samples=1`` is the plain sampler, bit for bit.
The K draws run as one batch of K images (``sample_batch`` at a time) when the batch holds one slice, else one
draw after another.
"""
from __future__ import annotations

import torch

from ..acquisition.physics import check_physics_coil_maps
from ..errors import ConfigError
from ..rng import is_per_slice


def draw_generators(generator, samples: int, batch: int):
    """Per draw k, the generator spec for a batch of ``batch`` slices: ``None`` (torch's global RNG) for each
    draw when ``generator`` is None; else child generators seeded from each slice's generator (one draw of 63
    bits per child, in draw order), on that generator's device."""
    if generator is None:
        return [None] * samples
    parents = list(generator) if is_per_slice(generator) else [generator]

    def children(g):
        seeds = torch.randint(0, 2 ** 62, (samples,), generator=g, device=g.device).tolist()
        return [torch.Generator(device=g.device).manual_seed(int(s)) for s in seeds]

    per_parent = [children(g) for g in parents]
    if not is_per_slice(generator):
        return per_parent[0]
    return [[per_parent[b][k] for b in range(batch)] for k in range(samples)]


def check_samples(samples, sample_batch, who: str) -> tuple[int, int | None]:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"{who}: samples must be an integer >= 1, got {samples!r}")
    if sample_batch is not None and (isinstance(sample_batch, bool) or not isinstance(sample_batch, int)
                                     or sample_batch < 1):
        raise ConfigError(f"{who}: sample_batch must be an integer >= 1 or None, got {sample_batch!r}")
    return samples, sample_batch


class SampleMean:
    """Mixin for samplers: subclasses implement ``sample(y, physics, generator=None, **kwargs)`` (one draw);
    ``forward`` returns the mean of ``self.samples`` draws (``return_std=True``: ``(mean, std)``), and leaves the
    per-pixel standard deviation over the draws in ``self.std`` (None for one draw) and the single-image network
    calls of all draws in ``self.nfe``."""

    samples: int = 1
    sample_batch: int | None = None  # draws per batched call (None: all K)
    batch_draws: bool = True         # False: draws one after another even for a one-slice batch
    std: torch.Tensor | None = None

    def set_samples(self, samples: int = 1, sample_batch: int | None = None) -> None:
        self.samples, self.sample_batch = check_samples(samples, sample_batch, getattr(self, "name", "sampler"))

    rng: torch.Generator | None = None  # deepinv's convention: a generator given at construction

    def forward(self, y, physics, generator=None, return_std: bool = False, seed: int | None = None, **kwargs):
        """Sample; the randomness comes from ``generator`` (a call's), else ``seed`` (deepinv's call-time
        convention: reseeds the sampler's ``rng``, or a new CPU generator), else the sampler's ``rng``, else
        torch's global RNG."""
        check_physics_coil_maps(physics)
        if generator is None:
            if seed is not None:
                if self.rng is None:
                    self.rng = torch.Generator()
                self.rng.manual_seed(int(seed))
            generator = self.rng
        K = self.samples
        if K == 1:
            self.std = None
            out = self.sample(y, physics, generator=generator, **kwargs)
            return (out, torch.zeros_like(out)) if return_std else out
        B = y.shape[0]
        gens = draw_generators(generator, K, B)
        draws, nfe = [], 0
        if B == 1 and self.batch_draws:  # the K draws as a batch of K copies of the one slice (the physics broadcasts over it)
            step = self.sample_batch or K
            for start in range(0, K, step):
                chunk = [g[0] if isinstance(g, list) else g for g in gens[start:start + step]]
                n = len(chunk)
                spec = None if chunk[0] is None else chunk
                rep = {k: (v.repeat_interleave(n, 0) if isinstance(v, torch.Tensor) and v.shape[:1] == (1,) else v)
                       for k, v in kwargs.items()}
                draws.append(self.sample(y.repeat_interleave(n, 0), physics, generator=spec, **rep))
                nfe += getattr(self, "nfe", 0) * n
            stack = torch.cat(draws).unsqueeze(1)                      # (K, 1, 2, H, W)
        else:
            for g in gens:
                draws.append(self.sample(y, physics, generator=g, **kwargs))
                nfe += getattr(self, "nfe", 0)
            stack = torch.stack(draws)                                 # (K, B, 2, H, W)
        self.nfe = nfe
        mean = stack.mean(0)
        self.std = stack.std(0, unbiased=True)
        return (mean, self.std) if return_std else mean
