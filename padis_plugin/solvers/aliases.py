"""The earlier solver names, one per (algorithm, prior family): ``padis-dds`` is ``dds`` with a PaDIS prior and
the defaults that name always had, so every config written for it builds the same solver and keeps its hash and
results. New configs name the algorithm (``dds``, ``daps``, ``dps``, ``diffpir``, ``pnp``) and let the checkpoint
pick the family and its tuned settings (:mod:`padis_plugin.solvers.settings`)."""
from __future__ import annotations

from .daps import make_daps
from .diffpir import make_diffpir
from .dds import make_dds
from .dps import make_dps
from .params import takes_params
from .pnp import PRIORS, make_pnp
from .settings import earlier, given

#: earlier name -> (algorithm, the families it takes, the defaults it had where they differ from the algorithm's class)
EARLIER = {
    "padis-dds": ("dds", ("padis",), {"checkpoint": "padis-s25"}),
    "edm-dds": ("dds", ("edm",), {"checkpoint": "edm-s25"}),
    "hfs-dds": ("dds", ("hfs", "patch-hfs"), {"checkpoint": "hfs-s25-256"}),
    "padis-daps": ("daps", ("padis",), {"checkpoint": "padis-s25"}),
    "edm-daps": ("daps", ("edm",), {"checkpoint": "edm-s25"}),
    "padis-dps": ("dps", ("padis",), {"checkpoint": "padis-s25"}),
    "edm-dps": ("dps", ("edm",), {"checkpoint": "edm-s25", "skip_noise": "last"}),
    "padis-diffpir": ("diffpir", ("padis",), {"checkpoint": "padis-s25"}),
    "deepinv-pnp": ("pnp", PRIORS, {}),   # its checkpoint followed its denoiser: _deepinv_pnp_settings
}
_MAKERS = {"dds": make_dds, "daps": make_daps, "dps": make_dps, "diffpir": make_diffpir, "pnp": make_pnp}


def _deepinv_pnp_settings(params, grid=None) -> dict:
    """``deepinv-pnp``'s defaults: the ``padis`` denoiser, and the 128 prior of the family the denoiser names."""
    from ..prior.families import get_family

    mine = given(params)
    denoiser = mine.get("denoiser", "padis")
    if denoiser in PRIORS:
        mine.setdefault("checkpoint", get_family(denoiser).default_checkpoint)
    return mine


_deepinv_pnp_settings.algorithm = "pnp"


def earlier_name(name: str):
    """The factory of the earlier name ``name``: the algorithm's, restricted to the name's prior families, with
    the name's own defaults and no tuned settings."""
    algorithm, families, defaults = EARLIER[name]
    make = _MAKERS[algorithm]
    restricted = type(make.params.__name__, (make.params,), {"FAMILIES": families, "__module__": __name__})
    hook = _deepinv_pnp_settings if name == "deepinv-pnp" else earlier(algorithm, defaults)

    @takes_params(restricted, name, settings=hook)
    def factory(p, device="cpu"):
        return make(p, device)

    factory.__name__ = "make_" + name.replace("-", "_")
    factory.__doc__ = (f"``{name}``: the earlier name of ``{algorithm}`` with a {' / '.join(families)} prior and "
                       f"the defaults it always had ({defaults or 'the class defaults'}).")
    factory.alias_of = algorithm
    return factory


make_padis_dds, make_edm_dds, make_hfs_dds = (earlier_name(n) for n in ("padis-dds", "edm-dds", "hfs-dds"))
make_padis_daps, make_edm_daps = (earlier_name(n) for n in ("padis-daps", "edm-daps"))
make_padis_dps, make_edm_dps = (earlier_name(n) for n in ("padis-dps", "edm-dps"))
make_padis_diffpir = earlier_name("padis-diffpir")
make_deepinv_pnp = earlier_name("deepinv-pnp")
