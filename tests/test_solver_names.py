"""One registered name per algorithm (``dds``, ``daps``, ``dps``, ``diffpir``, ``pnp``, ``hfs-pc``): the checkpoint
picks the prior family and its tuned settings; the earlier per-family names build what they always built."""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from padis_plugin.errors import ConfigError
from padis_plugin.solvers.registry import build_solver, resolved_params, solver_task, warn_other_grid
from padis_plugin.solvers.settings import TUNED

pytestmark = pytest.mark.usefixtures("one_thread")

EARLIER = json.loads((Path(__file__).parent / "data" / "earlier_solver_builds.json").read_text())["entries"]


def _attrs(obj) -> dict:
    """The plain settings of a built solver or denoiser, as the snapshot recorded them (long lists hashed)."""
    import hashlib

    import torch

    out = {}
    for k, v in vars(obj).items():
        if k.startswith("_") and k != "_tau":
            continue
        if isinstance(v, torch.Tensor) and v.numel() < 2000 and v.dtype.is_floating_point:
            v = [round(float(x), 10) for x in v.flatten().tolist()]
        elif isinstance(v, (tuple, list)) and all(isinstance(x, (int, float, str, bool)) for x in v):
            v = list(v)
        elif not (v is None or isinstance(v, (bool, int, float, str))):
            continue
        if isinstance(v, list) and len(v) > 8:
            v = "sha256:" + hashlib.sha256(json.dumps(v).encode()).hexdigest()[:16]
        out[k] = v
    return out


def snapshot_entry(name: str, params: dict) -> dict:
    """How solver ``name`` with ``params`` resolves and builds now, in the snapshot's format (for a new entry of
    tests/data/earlier_solver_builds.json)."""
    entry = {"name": name, "params": params, "resolved": resolved_params(name, params)}
    if solver_task(name) == "slice":
        solver = build_solver(name, params)
        entry.update({"class": type(solver).__name__, "attrs": _attrs(solver)})
        if getattr(solver, "denoiser", None) is not None:
            entry.update({"denoiser": type(solver.denoiser).__name__, "denoiser_attrs": _attrs(solver.denoiser)})
    return json.loads(json.dumps(entry))


def committed_solver_entries() -> list[tuple[str, dict, str]]:
    """(name, params, config file) of every solver entry of the committed configs whose checkpoint, if any, is
    shipped (the others, e.g. imported published priors, cannot be built here)."""
    import yaml

    from padis_plugin.errors import PadisError
    from padis_plugin.prior.denoiser import is_shipped, resolve_checkpoint

    repo = Path(__file__).resolve().parents[1]
    out = []
    for path in sorted([*repo.glob("configs/*.yaml"), *repo.glob("experiments/*/config.yaml")]):
        config = yaml.safe_load(path.read_text())
        for entry in (config or {}).get("solvers") or []:
            params = entry.get("params") or {}
            try:
                if params.get("checkpoint") and not is_shipped(resolve_checkpoint(params["checkpoint"])):
                    continue
            except PadisError:
                continue
            out.append((entry["name"], params, str(path.relative_to(repo))))
    return out


def test_every_committed_solver_entry_is_in_the_snapshot():
    """A committed config's results hold only while its entries build what they built: each entry is in the
    snapshot, which the next test checks (a new experiment adds its entries there)."""
    recorded = {(e["name"], json.dumps(e["params"], sort_keys=True)) for e in EARLIER}
    missing = [(name, params, where) for name, params, where in committed_solver_entries()
               if (name, json.dumps(params, sort_keys=True)) not in recorded]
    assert not missing, "add to tests/data/earlier_solver_builds.json (snapshot_entry gives each): " + \
        "; ".join(f"{where}: {name} {params}" for name, params, where in missing)


@pytest.mark.slow
def test_earlier_names_build_what_they_built_for_every_committed_config():
    """Every solver entry of the committed configs (whose checkpoints ship) resolves to the same parameters and
    builds the same sampler, with the same settings and the same denoiser, as before the names were merged:
    their configs keep their hashes and their results."""
    for entry in EARLIER:
        name, params = entry["name"], entry["params"]
        now = resolved_params(name, params)
        assert {k: now.get(k, "<missing>") for k in entry["resolved"]} == entry["resolved"], (name, params)
        if "class" not in entry or solver_task(name) != "slice":
            continue
        solver = build_solver(name, params)
        assert type(solver).__name__ == entry["class"], (name, params)
        assert _attrs(solver) == entry["attrs"], (name, params)
        if "denoiser" in entry:
            assert type(solver.denoiser).__name__ == entry["denoiser"]
            assert _attrs(solver.denoiser) == entry["denoiser_attrs"], (name, params)


def test_an_algorithm_takes_the_prior_for_the_grid_and_its_family_s_tuned_settings():
    at_256 = resolved_params("dds", {}, grid=256)
    assert at_256["checkpoint"] == "padis-s25-256" and resolved_params("dds", {}, grid=128)["checkpoint"] == "padis-s25"
    assert at_256["tau"] == "auto" and at_256["tau_scale"] == TUNED["padis"]["dds"]["tau_scale"] == 0.25
    edm = resolved_params("dds", {"checkpoint": "edm-s25-256"})
    assert edm["tau_scale"] == 0.5 and edm["gamma"] == 100.0
    assert resolved_params("dds", {"checkpoint": "hfs-s25-256"})["gamma"] == 30.0
    assert resolved_params("dds", {"tau_scale": 0.3}, grid=256)["tau_scale"] == 0.3   # a config's value wins
    best = resolved_params("pnp", {}, grid=256)
    assert (best["algorithm"], best["iterations"], best["denoiser"]) == ("DRS", 40, "padis")
    assert resolved_params("pnp", {"checkpoint": "edm-s25"})["denoiser"] == "edm"
    wavelet = resolved_params("pnp", {"denoiser": "wavelet"})
    assert wavelet["checkpoint"] is None and wavelet["algorithm"] == "HQS"          # no prior: nothing tuned
    assert resolved_params("dps", {"checkpoint": "edm-s25"})["skip_noise"] == "last"
    assert resolved_params("hfs-pc", {}, grid=256)["checkpoint"] == "hfs-s25-256"


def test_hfs_pc_defaults_to_its_tuned_corrector_snr_in_the_class_and_the_registry():
    """snr 0.32 (experiments/256_hfs_tuning), not the released 0.16, wherever hfs-pc is built from."""
    import inspect

    from padis_plugin.solvers.hfs_pc import HFSPC

    assert inspect.signature(HFSPC).parameters["snr"].default == 0.32
    assert resolved_params("hfs-pc", {}, grid=256)["snr"] == 0.32
    assert resolved_params("hfs-pc", {"checkpoint": "patch-hfs-s25-256"})["snr"] == 0.32


def test_a_checkpoint_carries_its_own_recommended_settings(tmp_path, tiny_checkpoints):
    """A checkpoint's JSON ``recommended:`` (per algorithm) replaces the package's fallback for its family."""
    src = Path(tiny_checkpoints["edm"])
    for suffix in (".json", ".safetensors"):
        shutil.copy(src.with_suffix(suffix), tmp_path / f"mine{suffix}")
    meta = json.loads((tmp_path / "mine.json").read_text())
    meta["recommended"] = {"dds": {"tau_scale": 0.7, "steps": 30}}
    (tmp_path / "mine.json").write_text(json.dumps(meta))
    mine = str(tmp_path / "mine")
    got = resolved_params("dds", {"checkpoint": mine})
    assert (got["tau_scale"], got["steps"], got["tau"]) == (0.7, 30, "auto")   # tau: the EDM family's fallback
    solver = build_solver("dds", {"checkpoint": mine, "steps": 3})
    assert solver.steps == 3 and solver.tau_scale == 0.7
    from padis_plugin.prior import load_prior
    from padis_plugin.solvers.dds import DDS

    assert DDS(load_prior(mine)).tau_scale == 0.7           # the class built by hand reads it as well


def test_a_sampler_class_built_by_hand_takes_its_prior_family_s_tuned_settings(tiny_checkpoints):
    """The classes agree with the registry: DAPS, DiffPIR and PnP on a PaDIS / EDM prior, arguments left out,
    run the family's tuned settings (settings.TUNED); a prior of no known family gets the plain defaults."""
    from padis_plugin.prior import load_prior
    from padis_plugin.solvers.daps import DAPSExact
    from padis_plugin.solvers.diffpir import PaDISDiffPIR
    from padis_plugin.solvers.pnp import build_pnp

    padis, edm = load_prior(tiny_checkpoints["padis"]), load_prior(tiny_checkpoints["edm"])
    assert DAPSExact(padis).tau_scale == TUNED["padis"]["daps"]["tau_scale"] == 0.5
    assert DAPSExact(edm).tau_scale == 1.0 and DAPSExact(padis, tau_scale=2.0).tau_scale == 2.0
    by_registry = build_solver("daps", {"checkpoint": tiny_checkpoints["padis"]})
    assert by_registry.tau_scale == DAPSExact(padis).tau_scale
    diffpir = PaDISDiffPIR(padis)
    assert (diffpir.iterations, diffpir.sigma, diffpir.zeta) == (50, 0.002, 1.0)
    registry = build_solver("diffpir", {"checkpoint": tiny_checkpoints["padis"]})
    assert (registry.iterations, registry.sigma, registry.zeta) == (diffpir.iterations, diffpir.sigma, diffpir.zeta)
    assert (PaDISDiffPIR(edm).iterations, PaDISDiffPIR(edm).sigma) == (100, 0.05)
    for prior, (algorithm, iterations) in ((padis, ("DRS", 40)), (edm, ("DRS", 20)), (lambda x, s: x, ("HQS", 20))):
        pnp = build_pnp(prior)
        assert type(pnp.algo).__name__ == algorithm and pnp.algo.max_iter == iterations


def test_settings_the_prior_has_not_are_refused_by_key(tiny_checkpoints):
    with pytest.raises(ConfigError, match=r"pad is a patch setting of the PaDIS prior"):
        build_solver("dds", {"checkpoint": tiny_checkpoints["edm"], "pad": 8})
    with pytest.raises(ConfigError, match=r"band_width is a setting of HFS priors"):
        build_solver("dps", {"checkpoint": tiny_checkpoints["padis"], "band_width": 4})
    with pytest.raises(ConfigError, match=r"'edm' prior; this algorithm samples with hfs / patch-hfs .*high band"):
        build_solver("hfs-pc", {"checkpoint": tiny_checkpoints["edm"]})
    with pytest.raises(ConfigError, match=r"padis-dds.*'edm' prior; this algorithm samples with padis priors"):
        build_solver("padis-dds", {"checkpoint": tiny_checkpoints["edm"]})   # an earlier name keeps its family
    with pytest.raises(ConfigError, match=r"tau must be"):
        build_solver("dds", {"checkpoint": tiny_checkpoints["edm"], "tau": "sometimes"})


def test_tau_off_switches_the_noise_aware_weight_off(tiny_checkpoints):
    solver = build_solver("dds", {"checkpoint": tiny_checkpoints["edm"], "tau": "off", "steps": 3})
    assert solver.tau is None and build_solver("dds", {"checkpoint": tiny_checkpoints["edm"]}).tau == "auto"


def test_a_prior_from_another_grid_warns_once():
    with pytest.warns(UserWarning, match=r"'padis-s25' was trained on 128 x 128 images and runs here on 256 x 256"):
        warn_other_grid("padis-s25", 256)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_other_grid("padis-s25", 256)        # once
        warn_other_grid("padis-s25-256", 256)    # its own grid
        warn_other_grid("no/such/checkpoint", 256)


def test_dds_class_defaults_are_the_tuned_ones(tiny_checkpoints):
    """``DDS(prior)`` in Python runs what ``build_solver("dds")`` runs with that prior: the class, the registry and
    the demo agree; a denoiser of no known family keeps the plain DDS settings."""
    from padis_plugin.prior import load_prior
    from padis_plugin.solvers.dds import DDS

    for kind in ("padis", "edm", "hfs"):
        mine = DDS(load_prior(tiny_checkpoints[kind]))
        named = build_solver("dds", {"checkpoint": tiny_checkpoints[kind]})
        assert (mine.gamma, mine.tau, mine.tau_scale) == (named.gamma, named.tau, named.tau_scale), kind
    plain = DDS(lambda x, sigma: x)
    assert (plain.gamma, plain.tau, plain.tau_scale) == (100.0, None, 1.0)
    assert DDS(load_prior(tiny_checkpoints["padis"]), tau=None).tau is None           # a given value wins
    assert DDS(load_prior(tiny_checkpoints["padis"]), data_consistency="projection").tau is None
