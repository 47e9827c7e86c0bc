"""What a solver runs with where a config leaves a parameter out.

A solver named by its algorithm (``dds``, ``daps``, ``dps``, ``diffpir``, ``pnp``) runs with the tuned settings of
its prior's family: the checkpoint's own (its JSON's ``recommended:``, per algorithm, so a user's prior can carry
its own) over this package's fallback :data:`TUNED`, measured on the validation patients at 256 x 256. Without a
``checkpoint`` it takes the shipped PaDIS prior trained for the data's grid (the bench and ``padis-recon`` pass
the grid; without one, the 128 prior).

The earlier names (``padis-dds``, ``edm-dps``, ``deepinv-pnp``, ...) are aliases (:func:`earlier`): the same
algorithm with the defaults those names always had, so a config written for them computes what it computed.
"""
from __future__ import annotations

#: prior family -> algorithm -> tuned settings (the package's fallback for a checkpoint without its own)
TUNED: dict[str, dict[str, dict]] = {
    "padis": {
        # experiments/256_frontier_validation: DRS 40 iterations 33.84 dB (mean of R = 4, 7), the best point estimate
        "pnp": {"denoiser": "padis", "algorithm": "DRS", "iterations": 40},
        # experiments/256_dds_noise_tuning: the noise-aware data weight with tau_scale 0.25
        "dds": {"tau": "auto", "tau_scale": 0.25},
        # probes on the validation slice sub-25_T1:2 (R = 7; docs/results.md), checked in
        # experiments/256_samplers_validation: a near-hard data step (sigma 0.002; lambda then hardly matters)
        # and fresh noise at every step (zeta 1: 28.28 dB against 26.89 at the class's 0.3)
        "diffpir": {"iterations": 50, "sigma": 0.002, "zeta": 1.0},
        # experiments/256_samplers_validation: the likelihood width 0.5 (31.18 dB over R = 4, 7; 1: 30.65, 0.25: 30.77)
        "daps": {"tau_scale": 0.5},
        # the patch TSMI prior, the same sweeps: 13.0 / 23.5 % at 1e-4 against 15.7 / 23.7 at 3e-4 (6 slices)
        # and 14.7 / 34.7 at 3e-5 (2 slices)
        "mrf-diph": {"lam": 1e-4},
    },
    "edm": {
        "pnp": {"denoiser": "edm", "algorithm": "DRS", "iterations": 20},   # 31.83 dB, the best EDM point estimate
        "dds": {"tau": "auto", "tau_scale": 0.5},                           # experiments/256_dds_noise_tuning_edm
        "dps": {"skip_noise": "last"},            # the whole-image EDM sampler's own (its last level adds no noise)
        # MR fingerprinting with a TSMI prior: experiments/mrf_val_tuning (2 validation slices, lambda 1e-5 ..
        # 1e-2) and mrf_val_baselines (6 slices): T1 / T2 MAPE 13.0 / 19.0 % at 1e-4 against 15.0 / 19.2 at 3e-4
        "mrf-diph": {"lam": 1e-4},
    },
    "hfs": {"dds": {"gamma": 30.0}},              # experiments/256_hfs_tuning: 28.77 dB against 28.21 at gamma 10
    "patch-hfs": {"dds": {"gamma": 30.0}},        # 29.14 dB against 28.61
}

#: algorithm -> prior family of its default checkpoint
DEFAULT_FAMILY = {"dds": "padis", "daps": "padis", "dps": "padis", "diffpir": "padis", "pnp": "padis",
                  "deepinv-dps": "padis", "hfs-pc": "hfs", "mrf-diph": "edm"}

#: algorithm -> its default checkpoint where that is not its family's image prior for the grid
DEFAULT_CHECKPOINT = {"mrf-diph": "mrf-edm-s"}   # MR fingerprinting needs a TSMI (10-channel) prior


def family_settings(denoiser, algorithm: str) -> dict:
    """The tuned settings of ``algorithm`` for ``denoiser``: its checkpoint's own (``recommended:``) over its
    prior family's (its ``kind``), what a sampler class built by hand on that prior takes where its arguments
    are left out, as the registered name gives them. A class reads the keys it leaves to the family (its
    docstring names them); other keys of a checkpoint's ``recommended:`` (e.g. ``steps``) reach a sampler
    through the registry only."""
    own = getattr(getattr(denoiser, "precond", None), "recommended", None) or {}
    return {**TUNED.get(getattr(denoiser, "kind", None), {}).get(algorithm, {}), **(own.get(algorithm) or {})}


def given(params) -> dict:
    """The parameters a config gives (a ``None`` value means the default, as everywhere in params)."""
    return {k: v for k, v in dict(params or {}).items() if v is not None}


def tuned(algorithm: str):
    """The settings hook of the solver named ``algorithm``: ``settings(params, grid) -> params`` with the
    checkpoint (default: the shipped prior for ``grid``) and its family's tuned settings filled in."""
    def settings(params, grid=None) -> dict:
        from ..prior.denoiser import resolve_checkpoint
        from ..prior.families import checkpoint_family, get_family
        from ..checkpoints import read_checkpoint_config

        mine = given(params)
        checkpoint = mine["checkpoint"] if "checkpoint" in mine else DEFAULT_CHECKPOINT.get(algorithm) or \
            get_family(DEFAULT_FAMILY[algorithm]).shipped_for(grid)  # '' is a bad checkpoint, not "the default"
        family = checkpoint_family(checkpoint)
        own = read_checkpoint_config(resolve_checkpoint(checkpoint)).get("recommended") or {}
        return {**TUNED.get(family.name, {}).get(algorithm, {}), **(own.get(algorithm) or {}), **mine,
                "checkpoint": checkpoint}
    settings.algorithm = algorithm
    return settings


def earlier(algorithm: str, defaults: dict):
    """The settings hook of an earlier name of ``algorithm``: ``defaults`` (the values that name had where
    they differ from the parameter class's) under what a config gives, nothing tuned."""
    def settings(params, grid=None) -> dict:
        return {**defaults, **given(params)}
    settings.algorithm = algorithm
    settings.defaults = dict(defaults)
    return settings
