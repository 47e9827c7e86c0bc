"""padis_plugin: patch-based diffusion priors (PaDIS-MRI) for multi-coil MRI, built on DeepInverse.

The public API is importable from the package top (``from padis_plugin import PaDISDenoiser, DDS``); names are
loaded on first use, so the console tools start without importing torch and deepinv for ``--help``.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "PaDISDenoiser": "padis_plugin.prior.denoiser", "EDMDenoiser": "padis_plugin.prior.denoiser",
    "load_prior": "padis_plugin.prior.families",
    "HFSDenoiser": "padis_plugin.prior.hfs", "PatchHFSDenoiser": "padis_plugin.prior.hfs",
    "HFSPC": "padis_plugin.solvers.hfs_pc",
    "VEDPS": "padis_plugin.solvers.dps", "PaDISDPS": "padis_plugin.solvers.dps", "EDMDPS": "padis_plugin.solvers.dps",
    "DDS": "padis_plugin.solvers.dds", "DAPSExact": "padis_plugin.solvers.daps",
    "CGProx": "padis_plugin.solvers.data_consistency", "Projection": "padis_plugin.solvers.data_consistency",
    "DPSGradient": "padis_plugin.solvers.data_consistency",
    "build_solver": "padis_plugin.solvers.registry", "available_solvers": "padis_plugin.solvers.registry",
    "register_solver": "padis_plugin.solvers.registry",
    "cartesian_mask": "padis_plugin.acquisition.masks", "CartesianMaskGenerator": "padis_plugin.acquisition.masks",
    "PoissonDiscMaskGenerator": "padis_plugin.acquisition.poisson",
    "DeepinvDPS": "padis_plugin.solvers.deepinv_dps",
    "slice_problem": "padis_plugin.acquisition", "make_problem": "padis_plugin.acquisition",
    "batch_problems": "padis_plugin.acquisition", "collate_slices": "padis_plugin.data.prepared",
    "prepare_slice": "padis_plugin.data.prepare", "PreparedDataset": "padis_plugin.data.prepared",
    "CartesianLines": "padis_plugin.acquisition", "PoissonDisc": "padis_plugin.acquisition",
    "build_physics": "padis_plugin.acquisition.physics", "image_metrics": "padis_plugin.metrics",
    "build_pnp": "padis_plugin.solvers.pnp",
    "edm_sigmas": "padis_plugin.prior.schedules",
    "import_published": "padis_plugin.published",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'padis_plugin' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
