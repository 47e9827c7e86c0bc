"""Acquisitions: the Cartesian masks unchanged, Poisson-disc masks sound and reproducible, given and acquired
masks, make_problem's A x_ref = y, the benchmark's masks section, and Cartesian configs' hashes unchanged."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from helpers import make_slice
from padis_plugin.bench.acquisitions import AcquisitionBank
from padis_plugin.acquisition import (AcquiredMask, CartesianLines, PoissonDisc, StoredMasks,
                                      achieved_acceleration, make_acquisition, make_problem, poisson_mask)
from padis_plugin.bench.run import load_bench_config
from padis_plugin.bench.items import config_hash, item_fingerprint, solver_labels
from padis_plugin.bench.config import BenchConfig
from padis_plugin.config import config_kind, from_dict, load_config, to_dict
from padis_plugin.errors import ConfigError, DataError
from padis_plugin.acquisition.masks import acs_lines_for, cartesian_mask, default_acs_lines

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_slice():
    return make_slice(n=32, coils=4, acs=8)


# --------------------------------------------------------------------------------------------- Cartesian
@pytest.mark.parametrize("shape, acceleration, acs", [(64, 4, 8), (64, 7, 4), ((32, 384), 5.5, 20), (128, 8, None)])
def test_cartesian_lines_are_the_old_masks_bit_for_bit(shape, acceleration, acs):
    acquisition = CartesianLines(acceleration, acs)
    width = shape if isinstance(shape, int) else shape[1]
    for seed in (0, 1, 7, 12345):
        old = cartesian_mask(shape, acceleration, default_acs_lines(width) if acs is None else acs, seed)
        assert torch.equal(acquisition.sample(shape, seed), old)


def test_one_acs_rule():
    assert acs_lines_for(384) == 24 and acs_lines_for(128) == 8 and acs_lines_for(16) == 1  # the paper's, scaled
    assert acs_lines_for(128, 12) == 12 and acs_lines_for(128, 20, acs_grid=384) == 7
    cfg = from_dict(BenchConfig, {"solvers": [{"name": "zero-filled"}], "masks": {"acs_lines": 20, "acs_grid": 384}})
    assert cfg.acquisition.acs_for(128) == acs_lines_for(128, 20, 384)


# ------------------------------------------------------------------------------------------ Poisson-disc
@pytest.mark.parametrize("shape, acceleration, acs", [((64, 64), 4.0, 8), ((64, 64), 8.0, 8), ((48, 64), 6.0, 6)])
def test_poisson_masks_binary_reproducible_with_acs_square_and_near_r(shape, acceleration, acs):
    state = np.random.get_state()[1].copy()
    a, b, other = (poisson_mask(shape, acceleration, acs, s) for s in (3, 3, 4))
    assert np.array_equal(np.random.get_state()[1], state)  # numpy's global random state is left alone
    assert a.shape == shape and a.dtype == torch.float32 and set(a.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(a, b) and not torch.equal(a, other)
    r0, c0 = (shape[0] - acs) // 2, (shape[1] - acs) // 2
    assert a[r0:r0 + acs, c0:c0 + acs].all()
    assert abs(achieved_acceleration(a) - acceleration) < 0.1
    columns = a.sum(dim=0)
    assert ((columns > 0) & (columns < shape[0])).any()  # columns partly sampled: a 2-D pattern, not lines


def test_poisson_disc_acquisition_and_errors():
    acquisition = PoissonDisc(8, acs_lines=None)  # ACS: 24 at 384 scaled to 64 -> 4
    mask = acquisition.sample(64, seed=2)
    assert torch.equal(mask, poisson_mask(64, 8, 4, 2)) and acquisition.approximate_rate
    mask[:] = 0  # a caller's edit does not reach the kept mask
    assert acquisition.sample(64, seed=2).sum() > 0
    assert make_acquisition("poisson", 8).kind == "poisson" and make_acquisition("cartesian", 8).kind == "cartesian"
    for bad in (lambda: poisson_mask(64, 1.0, 8), lambda: poisson_mask(64, 8, 40), lambda: poisson_mask(32, 4, 8, -1),
                lambda: make_acquisition("spiral", 4)):
        with pytest.raises(ConfigError):
            bad()


# ---------------------------------------------------------------------------------- given and own masks
def test_mask_file_seeds_index_its_masks(tmp_path):
    masks = np.stack([cartesian_mask(32, 4, 4, s).numpy() for s in range(3)])
    np.save(tmp_path / "m.npy", masks)
    stored = StoredMasks.from_file(tmp_path / "m.npy", (32, 32))
    assert len(stored) == 3 and all(np.array_equal(stored.sample(32, s).numpy(), masks[s]) for s in range(3))
    with pytest.raises(ConfigError, match=r"m\.npy: mask seed 3"):
        stored.sample(32, 3)
    np.save(tmp_path / "w.npy", masks * 0.5)
    with pytest.raises(DataError, match="weighted"):
        StoredMasks.from_file(tmp_path / "w.npy")


def test_acquired_mask_is_the_slices_own(small_slice):
    mask = poisson_mask(32, 3, 8, seed=0).numpy()
    acquired = dataclasses.replace(small_slice, kspace=small_slice.kspace * mask, undersampled=True,
                                   acquired_mask=mask)
    own = AcquiredMask(acquired)
    assert all(np.array_equal(own.sample(32, s).numpy(), mask) for s in (0, 5))  # every seed: the scan's mask
    y, physics, _ = make_problem(acquired, own, seed=5)
    assert torch.equal(physics.mask[0, 0], torch.from_numpy(mask))
    with pytest.raises(DataError, match=small_slice.id):
        AcquiredMask(small_slice)  # fully sampled: no mask of its own


# ------------------------------------------------------------------------------------------ make_problem
@pytest.mark.parametrize("acquisition", [CartesianLines(4, 8), PoissonDisc(4, 8)], ids=["cartesian", "poisson"])
def test_make_problem_measures_the_stored_kspace(small_slice, acquisition):
    y, physics, x_ref = make_problem(small_slice, acquisition, seed=1)
    mask = acquisition.sample(32, 1)
    assert y.shape == (1, 2, 4, 32, 32) and x_ref.shape == (1, 2, 32, 32)
    assert torch.equal(physics.mask[0, 0], mask)
    assert torch.allclose(y[0, 0], torch.from_numpy(small_slice.kspace.real) * mask, atol=1e-6)
    assert ((physics.A(x_ref) - y).norm() / y.norm()) < 1e-5  # fully sampled slice: A x_ref = y


@pytest.mark.parametrize("acquisition", [CartesianLines(4, 8), PoissonDisc(4, 8)], ids=["cartesian", "poisson"])
def test_problem_carries_what_reports_need(small_slice, acquisition):
    """measure() -> Problem: the triple unpacks from it, its pattern is the mask, and the achieved R is
    reported exactly where the acquisition only approximates the nominal one."""
    problem = acquisition.measure(small_slice, 1)
    y, physics, x_ref = problem
    assert y is problem.y and physics is problem.physics and x_ref is problem.x_ref
    mask = acquisition.sample(32, 1)
    np.testing.assert_array_equal(problem.info.pattern, mask.numpy())
    if acquisition.approximate_rate:
        assert problem.info.achieved_R == pytest.approx(mask.numel() / float(mask.sum()))
    else:
        assert problem.info.achieved_R is None
    assert problem.info.acs_lines == 8  # the ACS size the record reports comes from the scan, not the config
    assert StoredMasks(mask).measure(small_slice).info.acs_lines is None  # given masks: none is known


def test_step_drives_deepinv_physics_update(small_slice):
    """deepinv's pattern: the acquisition's step() parameters go into physics.update(**params)."""
    acquisition = PoissonDisc(4, 8)
    _, physics, _ = make_problem(small_slice, acquisition, seed=0)
    physics.update(**acquisition.step((32, 32), seed=3))
    _, expected, _ = make_problem(small_slice, acquisition, seed=3)
    x = torch.randn(1, 2, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(physics.A(x), expected.A(x))


# --------------------------------------------------------------------------------- benchmark masks section
def _bench(**masks) -> BenchConfig:
    return from_dict(BenchConfig, {"solvers": [{"name": "zero-filled"}], "masks": masks}, source="c.yaml")


def test_mask_bank_of_each_kind():
    cartesian = AcquisitionBank(_bench(accelerations=[4, 8], acs_lines=4, seeds=[0, 1]), (32, 32))
    assert torch.equal(cartesian(8, 1), cartesian_mask(32, 8, 4, 1))
    poisson = AcquisitionBank(_bench(kind="poisson", accelerations=[4, 8], acs_lines=4), (32, 32))
    assert torch.equal(poisson(8, 1), poisson_mask(32, 8, 4, 1)) and poisson.acquisition(4).approximate_rate
    with pytest.raises(ConfigError, match=r"c\.yaml: 'acquisition\.accelerations'.*ACS square"):
        AcquisitionBank(_bench(kind="poisson", accelerations=[4], acs_lines=20), (32, 32), "c.yaml")
    with pytest.raises(ConfigError, match=r"'masks\.kind'.*unknown acquisition kind 'spiral'"):
        _bench(kind="spiral")
    with pytest.raises(ConfigError, match=r"'masks\.kind'"):
        _bench(kind="poisson", file="m.npy")


# experiments/<name>/config.yaml beside its results
RESULTS_CONFIGS = sorted(str(p.relative_to(REPO)) for p in REPO.glob("experiments/*/config.yaml")
                         if config_kind(p) == "bench")


@pytest.mark.parametrize("name", RESULTS_CONFIGS)
def test_committed_results_were_made_by_their_committed_config(name):
    """Every results folder's resolved_config.json carries the hash of the config committed beside it (so the
    numbers of docs/results.md come from the configs as they stand), whatever fields the config engine has
    gained since: masks.kind at its default leaves the config dict."""
    cfg = load_bench_config(REPO / name)
    resolved = REPO / cfg.output.dir / "resolved_config.json"
    assert resolved.is_file(), f"{name}: an experiment's config lives beside its results; none are committed"
    assert ("kind" in to_dict(cfg)["acquisition"]) == (cfg.acquisition.kind != "cartesian")
    assert config_hash(cfg) == json.loads(resolved.read_text())["hash"]


def test_cartesian_configs_keep_their_item_fingerprints():
    """The values are those written by the code before masks had a kind: committed items are reused as before."""
    cfg = load_bench_config(REPO / "experiments" / "256_headline" / "config.yaml")
    fingerprints = {lab: item_fingerprint(to_dict(cfg), lab) for lab in solver_labels(to_dict(cfg))}
    assert {lab: fingerprints[lab] for lab in ("PaDIS S=25", "EDM S=25", "Wavelet-L1", "Zero-filled")} == {
        "PaDIS S=25": "f367d80e2969c5d3", "EDM S=25": "f34c81532dd6fb0b", "Wavelet-L1": "3c63aae9d13d5737",
        "Zero-filled": "db94d886ebd393a4"}
    poisson = dataclasses.replace(cfg, acquisition=dataclasses.replace(cfg.acquisition, kind="poisson"))
    assert to_dict(poisson)["acquisition"]["kind"] == "poisson" and config_hash(poisson) != config_hash(cfg)
    assert item_fingerprint(to_dict(poisson), "Zero-filled") != item_fingerprint(to_dict(cfg), "Zero-filled")
    assert from_dict(BenchConfig, to_dict(poisson)).acquisition.kind == "poisson"


def test_poisson_bench_reports_achieved_r(tmp_path):
    from padis_plugin.bench.run import run_benchmark
    from padis_plugin.data.prepared import write_prepared

    data = write_prepared(tmp_path / "d.h5", [make_slice(n=32, coils=4, acs=8)])
    config = {"name": "poisson", "device": "cpu", "data": {"path": str(data)},
              "masks": {"kind": "poisson", "accelerations": [4], "acs_lines": 4, "seeds": [0, 1]},
              "solvers": [{"name": "zero-filled"}], "output": {"dir": str(tmp_path / "out"), "figures": False}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    results = run_benchmark(load_bench_config(tmp_path / "c.yaml"), progress=False)
    rows = results["results"]
    assert [r["achieved_R"] for r in rows] == [achieved_acceleration(poisson_mask(32, 4, 4, s)) for s in (0, 1)]
    assert "Poisson-disc" in (tmp_path / "out" / "summary.md").read_text()


def test_recon_mask_kind(tmp_path, capsys):
    from padis_plugin.cli.recon import main
    from padis_plugin.data.prepared import write_prepared
    from padis_plugin.recon import reconstruct

    data = write_prepared(tmp_path / "d.h5", [make_slice(n=32, coils=4, acs=8)])
    rec = reconstruct(data, None, "zero-filled", acceleration=4, acs_lines=4, mask_seed=2, mask_kind="poisson")
    assert rec["mask_kind"] == "poisson" and rec["sampled_fraction"] == float(poisson_mask(32, 4, 4, 2).mean())
    assert "mask_kind" not in reconstruct(data, None, "zero-filled", acceleration=4)  # the default's record as before
    assert main([str(data), "--solver", "zero-filled", "--mask-kind", "poisson", "--acceleration", "4"]) == 0
    with pytest.raises(SystemExit):  # argparse: not one of the choices
        main([str(data), "--solver", "zero-filled", "--mask-kind", "spiral"])
    with pytest.raises(ConfigError, match="unknown mask kind"):
        reconstruct(data, None, "zero-filled", mask_kind="spiral")
    assert main(["--mask-kind", "poisson", "--demo-out", str(tmp_path / "demo")]) == 2  # the demo is Cartesian
    assert not (tmp_path / "demo").exists()


def test_acquisition_section_and_its_former_name_masks_are_one_section(tmp_path):
    """``acquisition:`` is the section's name; ``masks:`` (its first name) still reads, also in ``--set``,
    and both spellings hash alike, so results made under either keep their keys."""
    section = {"kind": "poisson", "accelerations": [4], "acs_lines": 4, "seeds": [0, 1]}
    new, old = (from_dict(BenchConfig, {"solvers": [{"name": "zero-filled"}], key: section}) for key in
                ("acquisition", "masks"))
    assert new == old and config_hash(new) == config_hash(old) and "acquisition" in to_dict(new)
    with pytest.raises(ConfigError, match=r"c\.yaml: 'masks' and 'acquisition' are the same section"):
        from_dict(BenchConfig, {"solvers": [{"name": "zero-filled"}], "masks": section, "acquisition": section},
                  source="c.yaml")
    with pytest.raises(ConfigError, match=r"'masks\.accelerations\.0': R=40"):  # named as the file spells it
        from_dict(BenchConfig, {"solvers": [{"name": "zero-filled"}], "masks": {"accelerations": [40]}})
    path = tmp_path / "c.yaml"
    path.write_text("solvers: [{name: zero-filled}]\nacquisition: {accelerations: [4]}\n")
    assert load_bench_config(path, ["masks.accelerations=[7]"]).acquisition.accelerations == [7.0]
    assert load_config(BenchConfig, path, ["acquisition.seeds=[2]"]).acquisition.seeds == [2]


def test_config_knows_every_registered_acquisition_kind():
    """The config checks kinds without importing torch; its list is the registry's."""
    from padis_plugin.acquisition import KINDS
    from padis_plugin.bench.config import ACQUISITION_KINDS

    assert set(ACQUISITION_KINDS) == set(KINDS)
