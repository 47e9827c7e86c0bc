"""A minimal third-party padis-plugin solver: Tikhonov-regularised SENSE by conjugate gradient.

min_x ||A x - y||^2 + lam ||x||^2, i.e. (A^H A + lam I) x = A^H y, solved with deepinv's conjugate gradient.
"""
import torch
from deepinv.models import Reconstructor
from deepinv.optim.utils import conjugate_gradient


class TikhonovCG(Reconstructor):
    nfe = 0  # no network evaluations

    def __init__(self, lam=0.01, iterations=20):
        super().__init__()
        self.lam, self.iterations = float(lam), int(iterations)

    def forward(self, y, physics, generator=None, **kwargs):  # deterministic: the generator is unused
        with torch.no_grad():
            normal = lambda x: physics.A_adjoint(physics.A(x)) + self.lam * x  # noqa: E731
            return conjugate_gradient(normal, physics.A_adjoint(y), max_iter=self.iterations, tol=1e-6)


def make_tikhonov_cg(params, device="cpu"):
    """The factory padis-plugin calls: ``factory(params: dict, device) -> solver``; reject unknown keys."""
    params = dict(params or {})
    unknown = set(params) - {"lambda", "iterations"}
    if unknown:
        from padis_plugin.errors import ConfigError

        raise ConfigError(f"solver 'tikhonov-cg': unknown parameter(s) {sorted(unknown)}")
    return TikhonovCG(params.get("lambda", 0.01), params.get("iterations", 20)).to(device)
