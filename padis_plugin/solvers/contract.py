"""The solver contract: how the bench and the CLIs call any reconstructor, ours or deepinv's.

A solver is a :class:`deepinv.models.Reconstructor` (or any callable) ``solver(y, physics) -> (B, 2, H, W)``.
It may also accept ``generator=`` (a ``torch.Generator``, or a list of them, one per slice) for its
randomness, and may report ``nfe`` (network evaluations of the last call). A stock deepinv reconstructor
takes neither: it is called without ``generator`` under torch's global RNG seeded from that generator, so its
results are reproducible too, and the caller's global RNG state is left as it was.

A solver is built by a factory ``factory(params, device)``. A factory that declares a parameters dataclass
(``@takes_params(MyParams, "my-solver")`` from :mod:`padis_plugin.solvers.params`, or ``factory.params =
MyParams``) receives a ``MyParams`` instance, its keys, types and allowed values checked by the registry (and
listed by ``padis-bench --list-solvers -v``); one that declares none receives the params as a plain dict and
raises :class:`~padis_plugin.errors.ConfigError` for keys it does not know.
"""
from __future__ import annotations

import inspect

import torch

from ..rng import first_generator


def accepts_generator(solver) -> bool:
    """Whether ``solver``'s call names a ``generator`` parameter. A bare ``**kwargs`` does not count: deepinv's
    own optimisers take ``**kwargs`` and fail on (or silently drop) a generator."""
    try:
        return "generator" in inspect.signature(getattr(solver, "forward", solver)).parameters
    except (TypeError, ValueError):
        return False


def call_solver(solver, y, physics, generator=None):
    """``solver(y, physics)``, passing ``generator`` only to solvers that take it (see the module docstring)."""
    if generator is None or accepts_generator(solver):
        return solver(y, physics) if generator is None else solver(y, physics, generator=generator)
    g = first_generator(generator)
    devices = [y.device] if y.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        seed = int(torch.randint(0, 2**62, (1,), generator=g, device=g.device).item())
        torch.manual_seed(seed)
        return solver(y, physics)


def solver_nfe(solver) -> int:
    """Network evaluations of the solver's last call (0 when it does not report them)."""
    return int(getattr(solver, "nfe", 0) or 0)
