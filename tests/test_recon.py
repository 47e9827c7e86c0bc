"""padis-recon end to end with tiny random checkpoints: the demo, one-slice reconstruction, every solver, errors."""
import json

import h5py
import numpy as np
import pytest
import torch

from padis_plugin.cli.recon import main
from padis_plugin.errors import ConfigError
from padis_plugin.data.bundled import demo_dataset
from padis_plugin.data.prepared import PreparedDataset
from padis_plugin.recon import make_problem, reconstruct
from padis_plugin.solvers.registry import available_solvers, build_solver, solver_task
from padis_plugin.acquisition.masks import cartesian_mask
from padis_plugin.acquisition import slice_problem


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tiny_checkpoints):
    """The shared tiny PaDIS / EDM checkpoints and the (cached) bundled demo file."""
    return {**tiny_checkpoints, "data": demo_dataset()}


@pytest.mark.slow
def test_demo_cli_end_to_end(tiny, tmp_path, capsys):
    out = tmp_path / "demo"
    rc = main(["--steps", "2", "--inner", "1", "--padis-checkpoint", tiny["padis"], "--edm-checkpoint", tiny["edm"],
               "--demo-out", str(out), "--no-progress"])
    assert rc == 0
    results = json.loads((out / "demo_results.json").read_text())
    assert list(results) == ["zero-filled", "wavelet-l1", "edm", "padis"]
    for r in results.values():
        assert set(r) == {"psnr", "ssim", "nrmse", "seconds", "nfe"} and np.isfinite(r["psnr"])
    assert results["padis"]["nfe"] == 2 and results["zero-filled"]["nfe"] == 0
    assert (out / "demo.png").stat().st_size > 0 and (out / "demo_config.json").is_file()
    config = json.loads((out / "demo_config.json").read_text())
    from padis_plugin.recommended import MODES
    assert config["mode"] == "best" and config["solvers"]["padis"]["name"] == MODES["best"]["padis"][0]
    printed = capsys.readouterr().out
    assert "PnP, 2 network calls" in printed and "padis" in printed and "PSNR" in printed
    assert "wavelet-L1" in printed  # says which prior beat wavelet-L1 (or that none did)


def test_demo_sample_mode_runs_dds(tiny, tmp_path):
    from padis_plugin.recon import run_demo

    results = run_demo(tmp_path / "d", steps=2, padis_checkpoint=tiny["padis"], edm_checkpoint=tiny["edm"],
                       solvers=("zero-filled", "padis"), progress=False, echo=lambda *a: None, mode="sample")
    config = json.loads((tmp_path / "d" / "demo_config.json").read_text())
    padis = config["solvers"]["padis"]
    assert padis["name"] == "dds" and results["padis"]["nfe"] == 2
    assert (padis["params"]["tau"], padis["params"]["tau_scale"], padis["params"]["steps"]) == ("auto", 0.25, 2)


def test_demo_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    rc = main(["--padis-checkpoint", "no-such-ckpt", "--demo-out", str(tmp_path / "d"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "no-such-ckpt.safetensors" in err
    assert "--padis-checkpoint" in err and not (tmp_path / "d").exists()


@pytest.mark.slow
def test_reconstruct_saves_npy_h5_png(tiny, tmp_path):
    ds = PreparedDataset(tiny["data"])
    params = {"checkpoint": tiny["padis"], "steps": 2, "inner": 1, "progress": False}
    rec = reconstruct(tiny["data"], ds.ids[0], "padis-dps", params, acceleration=4, seed=3,
                      out=tmp_path / "x.npy", png=tmp_path / "x.png")
    x = np.load(tmp_path / "x.npy")
    assert x.shape == (128, 128) and x.dtype == np.complex64 and rec["nfe"] == 2 and rec["seed"] == 3
    assert set(rec["metrics"]) == {"psnr", "ssim", "nrmse"} and (tmp_path / "x.png").stat().st_size > 0
    rec2 = reconstruct(tiny["data"], 0, "padis-dps", params, acceleration=4, seed=3, out=tmp_path / "x.h5")
    with h5py.File(tmp_path / "x.h5") as f:
        np.testing.assert_array_equal(f["reconstruction"][()], x)  # same seed, same slice -> same image
        assert json.loads(f.attrs["record"])["slice"] == rec2["slice"] == ds.ids[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.h5", "x.npy", "x.png"]  # no temp files left


def test_acquired_undersampled_slice_gets_an_images_only_figure(tmp_path):
    """No reference: no metrics, and the figure (padis_plugin.bench.figures.unreferenced_figure) shows images only."""
    from helpers import make_slice
    from padis_plugin.data.prepared import write_prepared

    slc = make_slice(n=32, coils=4, acs=8)
    mask = cartesian_mask(32, 4.0, 8, seed=0).numpy()
    slc.kspace, slc.undersampled, slc.acquired_mask = slc.kspace * mask, True, mask
    data = write_prepared(tmp_path / "under.h5", [slc])
    rec = reconstruct(data, None, "zero-filled", out=tmp_path / "x.npy", png=tmp_path / "x.png")
    assert rec["metrics"] is None and rec["acceleration"] is None and rec["sampled_fraction"] == float(mask.mean())
    assert (tmp_path / "x.png").stat().st_size > 0 and np.load(tmp_path / "x.npy").shape == (32, 32)


def test_cli_errors_exit_2_without_outputs(tiny, tmp_path, capsys):
    for argv in ([str(tmp_path / "missing.h5")],
                 [str(tiny["data"]), "--solver", "zero-filled", "--out", str(tmp_path / "x.txt")],
                 [str(tiny["data"]), "--solver", "no-such-solver", "--out", str(tmp_path / "x.npy")],
                 [str(tiny["data"]), "--solver", "zero-filled", "--set", "zeta"],
                 [str(tiny["data"]), "--solver", "zero-filled", "--slice", "nope:0"],
                 [str(tiny["data"]), "--solver", "zero-filled", "--device", "meta"],
                 [str(tiny["data"]), "--solver", "zero-filled", "--mask-seed", "-1"],
                 [str(tiny["data"]), "--solver", "zero-filled", "--seed", str(2 ** 70)]):
        assert main(argv) == 2
        assert capsys.readouterr().err.startswith("error: ")
    assert list(tmp_path.iterdir()) == []
    assert main([str(tiny["data"]), "--solver", "zero-filled", "--out", str(tmp_path / "z.npy")]) == 0
    assert "zero-filled on" in capsys.readouterr().out


def _two_step_params(name, tiny):
    if name in ("padis-dps", "edm-dps", "dps"):
        return {"checkpoint": tiny[name.split("-")[0] if "-" in name else "padis"], "steps": 2, "inner": 1,
                "progress": False}
    if name in ("padis-diffpir", "diffpir", "deepinv-diffpir"):
        return {"checkpoint": tiny["padis"], "iterations": 2, "progress": False}
    if name == "deepinv-dps":  # DDPM's solver makes no call at its last time step: 3 steps, 2 calls
        return {"checkpoint": tiny["padis"], "steps": 3}
    if name in ("padis-dds", "edm-dds", "padis-daps", "edm-daps"):
        return {"checkpoint": tiny[name.split("-")[0]], "steps": 2}
    if name in ("dds", "daps"):
        return {"checkpoint": tiny["edm"], "steps": 2}
    if name in ("sense", "wavelet-l1"):
        return {"iterations": 2}
    if name in ("deepinv-pnp", "pnp"):
        return {"checkpoint": tiny["padis"], "iterations": 2}
    if name in ("hfs-pc", "hfs-dds"):
        return {"checkpoint": tiny["hfs"], "steps": 2}
    if name != "zero-filled":
        raise AssertionError(f"a new solver {name!r}: give it a two-step setting here")
    return {}


def test_every_registered_solver_runs_two_steps_through_padis_bench(tiny, tmp_path):
    import json

    import yaml

    from padis_plugin.cli.bench import main as bench_main

    from importlib.metadata import entry_points

    # every image solver the package declares (in-process registrations of other tests are not part of it;
    # the MR-fingerprinting solvers have their own task: tests/test_mrf_bench.py)
    names = sorted(ep.name for ep in entry_points(group="padis_plugin.solvers") if solver_task(ep.name) == "slice")
    assert set(names) <= set(available_solvers())
    assert {"zero-filled", "sense", "wavelet-l1", "padis-dps", "edm-dps", "padis-diffpir", "padis-dds", "edm-dds",
            "padis-daps", "edm-daps"} <= set(names)
    config = {
        "name": "every-solver", "device": "cpu",
        "data": {"path": "bundled-demo", "max_slices": 1},
        "masks": {"accelerations": [4], "acs_lines": 8, "seeds": [0]},
        "solvers": [{"name": n, "params": _two_step_params(n, tiny)} for n in names],
        "output": {"dir": str(tmp_path / "out"), "figures": False, "save_recons": False},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
    assert bench_main(["--config", str(tmp_path / "cfg.yaml"), "--no-progress"]) in (0, None)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    rows = results["results"]
    assert {r["name"] for r in rows} == set(names) and len(rows) == len(names)
    assert all(np.isfinite(r["psnr"]) for r in rows)
    diffusion = {"padis-dps", "edm-dps", "padis-diffpir", "padis-dds", "edm-dds", "padis-daps", "edm-daps",
                 "deepinv-pnp", "hfs-dds", "dps", "diffpir", "dds", "daps", "pnp", "deepinv-diffpir", "deepinv-dps"}  # hfs-pc: predictor + corrector
    assert all(r["nfe"] == 2 for r in rows if r["name"] in diffusion)  # (other tests may register more solvers)


def _declared_solvers(task: str = "slice") -> list[str]:
    from importlib.metadata import entry_points

    return sorted(ep.name for ep in entry_points(group="padis_plugin.solvers") if solver_task(ep.name) == task)


# measured over 10 s each on the 2-core CI machine (whole-image EDM prior on the 128 x 128 demo slice)
SLOW_SOLVERS = {"edm-dps", "edm-daps"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_SOLVERS else n
                                  for n in _declared_solvers()])
def test_registered_solver_shape_and_determinism_under_a_generator(tiny, name):
    """The shared check: (B, 2, H, W) output, same generator -> same output, nfe reported."""
    from padis_plugin.solvers.contract import call_solver

    slc = PreparedDataset(tiny["data"])[0]
    y, physics, x_ref = slice_problem(slc, cartesian_mask(slc.size, 4, 8, 0))
    solver = build_solver(name, _two_step_params(name, tiny))
    torch.manual_seed(1)  # a solver must not depend on the global RNG state
    a = call_solver(solver, y, physics, torch.Generator().manual_seed(0))
    torch.manual_seed(2)
    b = call_solver(solver, y, physics, torch.Generator().manual_seed(0))
    assert a.shape == x_ref.shape and torch.equal(a, b)
    assert isinstance(getattr(solver, "nfe", None), int)


@pytest.mark.filterwarnings("ignore::padis_plugin.data.prepare.BackgroundSignalWarning")
def test_raw_file_is_prepared_on_its_own_grid_and_settings_are_printed(tmp_path, capsys, slice_factory,
                                                                        monkeypatch):
    """``padis-recon FILE`` prepares a raw fastMRI file on its header's reconstruction matrix (not 384), and
    says the grid and every setting the solver ran with; --size overrides the grid."""
    from padis_plugin.data.fastmri_format import recon_matrix, write_fastmri_h5
    from padis_plugin.kspace import fft2c

    s = slice_factory(32, coils=4, acs=8)
    coil_images = s.coil_maps * s.reference[None]
    kspace = fft2c(np.pad(coil_images, ((0, 0), (16, 16), (0, 0))))[None]  # readout oversampled 2x
    raw = write_fastmri_h5(tmp_path / "file_brain_AXT1_1.h5", kspace, recon_size=(32, 32))
    assert recon_matrix(raw) == 32
    cache = ["--acceleration", "2", "--solver", "wavelet-l1"]
    monkeypatch.setenv("PADIS_CACHE", str(tmp_path / "cache"))
    assert main([str(raw), *cache, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "(32 x 32)" in out and "settings: lambda=" in out and "iterations=100" in out
    assert main([str(raw), *cache, "--size", "48", "--no-progress"]) == 0
    assert "(48 x 48)" in capsys.readouterr().out


def test_no_solver_means_the_recommended_mode_with_the_grids_prior(tiny):
    from padis_plugin.recommended import MODES, recommended, shipped_prior

    rec = reconstruct(tiny["data"], None, None, {"iterations": 2})  # the bundled 128 x 128 demo file
    assert rec["solver"] == MODES["best"]["padis"][0] and rec["params"]["checkpoint"] == "padis-s25"
    assert rec["params"]["iterations"] == 2 and rec["metrics"]["psnr"] > 0
    assert shipped_prior("edm", 256) == "edm-s25-256" and shipped_prior("padis", 320) == "padis-s25-256"
    assert recommended("edm", "sample", size=128) == ("dds", {"checkpoint": "edm-s25", **MODES["sample"]["edm"][1]})
    with pytest.raises(ConfigError, match="unknown mode 'quick'"):
        recommended("padis", "quick")


@pytest.mark.parametrize("solver, calls", [("hfs-dds", 2), ("dds", 2), ("hfs-pc", 4)])
def test_steps_option_reaches_every_sampler(tiny, tmp_path, capsys, solver, calls):
    """``--steps 2`` runs 2 noise levels for every sampler (hfs-pc and hfs-dds ran their own 100 / 50)."""
    checkpoint = tiny["hfs"] if solver.startswith("hfs") else tiny["edm"]
    argv = [str(tiny["data"]), "--solver", solver, "--steps", "2", "--set", f"checkpoint={checkpoint}",
            "--acs", "16", "--no-progress"]
    assert main(argv) == 0
    assert f"{calls} network evaluations" in capsys.readouterr().out
