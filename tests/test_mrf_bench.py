"""padis-bench's ``mrf`` task end to end on a tiny file (32 x 32, 24 frames, ~400 atoms): every MRF solver runs,
T1 / T2 errors reach results.json and summary.md, an interrupted run resumes, and the config checks its task."""
from __future__ import annotations

import dataclasses
import json
from typing import ClassVar

import pytest
import torch

from padis_plugin.bench.run import load_bench_config, run_benchmark
from padis_plugin.errors import ConfigError
from padis_plugin.mrf.dictionary import MRFDictionary, tissue_grid
from padis_plugin.mrf.files import write_mrf_file
from padis_plugin.mrf.phantom import mrf_phantom
from padis_plugin.mrf.simulate import MRFSetup, simulate_item

pytestmark = pytest.mark.usefixtures("one_thread")
SETUP = MRFSetup(matrix=32, frames=24, samples=64, interleaves=24, rank=5, atoms=400, snr_db=40.0)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("PADIS_CACHE", str(tmp_path_factory.getbasetemp() / "padis_cache"))


@pytest.fixture
def mrf_file(tmp_path):
    seq, traj = SETUP.sequence(), SETUP.trajectory()
    basis = MRFDictionary.cached(seq, SETUP.rank, tissue_grid(target_atoms=SETUP.atoms)).basis
    items = []
    for k in range(2):
        maps = mrf_phantom(32, seed=k)
        ksp, _ = simulate_item(maps, seq, basis, traj, SETUP.snr_db, torch.Generator().manual_seed(k))
        items.append((f"ph:{k}", f"p{k}", "T1", maps, ksp, k))
    path = tmp_path / "mrf.h5"
    write_mrf_file(path, SETUP, seq, traj, items, basis=basis, progress=False)
    return path


def _config(tmp_path, data, extra=""):
    path = tmp_path / "mrf.yaml"
    path.write_text(f"""name: mrf-test
task: mrf
data: {{path: {data}}}
solvers:
  - {{name: mrf-svd-dm, label: SVD-DM}}
  - {{name: mrf-admm-dm, label: ADMM-DM, params: {{steps: 10, gamma_fixed: 1.0e-2}}}}
output: {{dir: {tmp_path / 'out'}, figures: true}}
{extra}""")
    return path


def test_mrf_task_runs_reports_and_resumes(tmp_path, mrf_file, monkeypatch):
    cfg = load_bench_config(_config(tmp_path, mrf_file))
    results = run_benchmark(cfg, progress=False)
    rows = results["results"]
    assert len(rows) == 4 and {r["solver"] for r in rows} == {"SVD-DM", "ADMM-DM"}
    for r in rows:
        assert r["mape_t1"] > 0 and r["mape_t2"] > 0 and r["tsmi_nrmse"] > 0 and r["nfe"] == 0
    means = {m["solver"]: m for m in results["means"]}
    assert means["ADMM-DM"]["mape_t2"] < means["SVD-DM"]["mape_t2"]  # iterating beats one projection
    out = tmp_path / "out"
    assert json.loads((out / "results.json").read_text())["task"] == "mrf"
    summary = (out / "summary.md").read_text()
    assert "T1 MAPE (%)" in summary and "| ADMM-DM |" in summary
    assert (out / "figures" / "ph_0.png").is_file() and (out / "maps" / "ph_1" / "SVD-DM.npz").is_file()
    # a rerun finds every item done: no solver is called again, the numbers are the same
    import padis_plugin.bench.mrf_run as mrf_run
    real_solve = mrf_run._solve
    monkeypatch.setattr(mrf_run, "_solve", lambda *a, **k: pytest.fail("item recomputed"))
    again = run_benchmark(cfg, progress=False)
    assert again["results"] == rows
    # a committed folder (results.json; no partial files, maps or figures) with a solver more: the new solver's
    # items run, the reused ones keep their records and are recomputed only for their figure panels
    import shutil

    for folder in ("partial", "maps", "figures"):
        shutil.rmtree(out / folder)
    solved = []

    def only_new(cfg, solver, label, *args, **kwargs):
        solved.append(label)
        return real_solve(cfg, solver, label, *args, **kwargs)

    monkeypatch.setattr(mrf_run, "_solve", only_new)
    path = _config(tmp_path, mrf_file)
    path.write_text(path.read_text().replace(
        "solvers:\n", "solvers:\n  - {name: mrf-cg-dm, label: CG-DM, params: {iterations: 3}}\n"))
    more = run_benchmark(load_bench_config(path), progress=False)
    assert sorted(solved) == ["ADMM-DM", "ADMM-DM", "CG-DM", "CG-DM", "SVD-DM", "SVD-DM"]
    assert [r for r in more["results"] if r["solver"] != "CG-DM"] == rows
    assert all((out / "maps" / "ph_0" / f"{lab}.npz").is_file() for lab in ("CG-DM", "SVD-DM", "ADMM-DM"))
    assert (out / "figures" / "ph_0.png").is_file()


def test_mrf_task_refuses_masks_and_non_mrf_files(tmp_path, mrf_file):
    with pytest.raises(ConfigError, match="masks"):
        load_bench_config(_config(tmp_path, mrf_file, "masks: {accelerations: [4]}"))
    bad = tmp_path / "not.h5"
    bad.write_bytes(b"nope")
    with pytest.raises(Exception, match="not.h5"):
        run_benchmark(load_bench_config(_config(tmp_path, bad)), progress=False)


def _tiny_tsmi_priors(tmp_path):
    """Untrained 10-channel EDM and PaDIS priors saved as checkpoints (the solver path, not their quality)."""
    from padis_plugin.prior import EDMDenoiser, EDMPrecond, PaDISDenoiser, build_unet
    from padis_plugin.prior.network import resolve_model_config

    torch.manual_seed(0)
    edm = EDMDenoiser(EDMPrecond(build_unet(resolve_model_config("edm-tiny", image_channels=10))))
    padis = PaDISDenoiser(EDMPrecond(build_unet(resolve_model_config("padis-tiny", image_channels=10))),
                          patch_size=16, pad=8)
    return {kind: str(den.save_pretrained(tmp_path / f"tsmi-{kind}")) for kind, den in
            (("edm", edm), ("padis", padis))}


def test_every_declared_mrf_solver_runs_in_padis_bench(tmp_path, mrf_file):
    """The shared check of the mrf task: every solver the package declares for it runs two steps through
    padis-bench on both prior families, and the same seed gives the same maps."""
    from importlib.metadata import entry_points

    from padis_plugin.solvers.registry import solver_task

    names = sorted(ep.name for ep in entry_points(group="padis_plugin.solvers") if solver_task(ep.name) == "mrf")
    assert names == ["mrf-admm-dm", "mrf-cg-dm", "mrf-diph", "mrf-svd-dm"]
    priors = _tiny_tsmi_priors(tmp_path)
    entries = []
    for n in names:
        params = {"mrf-admm-dm": {"steps": 2}, "mrf-cg-dm": {"iterations": 2}, "mrf-svd-dm": {}}.get(n)
        if params is not None:
            entries.append(f"  - {{name: {n}, label: {n}, params: {params}}}")
        else:
            for kind, path in priors.items():
                entries.append(f"  - {{name: {n}, label: {n}-{kind}, params: {{checkpoint: '{path}', steps: 2}}}}")
    text = (f"name: every-mrf\ntask: mrf\ndata: {{path: {mrf_file}, max_slices: 1}}\nsolvers:\n" + "\n".join(entries)
            + f"\noutput: {{dir: {tmp_path / 'out'}}}\n")
    (tmp_path / "every.yaml").write_text(text)
    results = run_benchmark(load_bench_config(tmp_path / "every.yaml"), progress=False)
    rows = {r["solver"]: r for r in results["results"]}
    assert set(rows) == {"mrf-admm-dm", "mrf-cg-dm", "mrf-svd-dm", "mrf-diph-edm", "mrf-diph-padis"}
    assert rows["mrf-diph-edm"]["nfe"] == 2 and rows["mrf-diph-padis"]["nfe"] == 2
    assert all(r["mape_t1"] == r["mape_t1"] for r in rows.values())  # finite: maps were matched

    again = run_benchmark(load_bench_config(tmp_path / "every.yaml"), overwrite=True, progress=False)
    assert [r["mape_t1"] for r in again["results"]] == [r["mape_t1"] for r in results["results"]]


def test_a_slice_config_refuses_mrf_solvers(tmp_path):
    path = tmp_path / "slice.yaml"
    path.write_text("name: x\ndata: {path: bundled-demo}\nsolvers:\n  - {name: mrf-svd-dm}\n")
    from padis_plugin.bench.build import build_solvers

    with pytest.raises(ConfigError, match="'mrf-svd-dm' solves the 'mrf' task"):
        build_solvers(load_bench_config(path), "cpu")


def test_padis_recon_writes_the_maps_of_an_mrf_file(tmp_path, mrf_file, capsys):
    import numpy as np

    from padis_plugin.cli.recon import main

    out, png = tmp_path / "maps.npz", tmp_path / "maps.png"
    assert main([str(mrf_file), "--solver", "mrf-admm-dm", "--steps", "2", "--slice", "1", "--out", str(out),
                 "--png", str(png), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "mrf-admm-dm on ph:1: T1 MAPE" in text and png.is_file()
    with np.load(out, allow_pickle=False) as z:
        assert z["t1"].shape == (32, 32) and z["pd"].dtype == np.complex64
    for argv in ([str(mrf_file), "--solver", "wavelet-l1", "--out", str(tmp_path / "x.npz")],
                 [str(mrf_file), "--solver", "mrf-svd-dm", "--out", str(tmp_path / "x.npy")],
                 [str(mrf_file), "--solver", "mrf-svd-dm", "--slice", "nope"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "x.npz").exists() and not (tmp_path / "x.npy").exists()


@dataclasses.dataclass
class _MRFNoParams:
    TASK: ClassVar[str] = "mrf"   # the task a solver declares on its parameters class


def test_a_diverged_mrf_item_is_recorded_as_failed(tmp_path, mrf_file):
    """An MRF solver that diverges on one slice: that item is failed (its message in results.json and
    summary.md, left out of the means), the rest runs and its figure is drawn without the failed panel."""
    from padis_plugin.solvers.base import SamplerDivergedError
    from padis_plugin.solvers.params import takes_params
    from padis_plugin.solvers.registry import register_solver

    class DivergesOnFirst(torch.nn.Module):
        nfe = 0

        def forward(self, y, physics, generator=None):
            if y.abs().sum() == getattr(self, "first", y.abs().sum()):
                self.first = y.abs().sum()
                raise SamplerDivergedError("MRF-DiPh: non-finite TSMI at level 2")
            return physics.A_adjoint(y)

    register_solver("test-mrf-diverges")(takes_params(_MRFNoParams, "test-mrf-diverges")(
        lambda p, device="cpu": DivergesOnFirst()))
    path = _config(tmp_path, mrf_file).read_text().replace(
        "  - {name: mrf-admm-dm, label: ADMM-DM, params: {steps: 10, gamma_fixed: 1.0e-2}}", "  - {name: test-mrf-diverges, label: Div}")
    (tmp_path / "mrf.yaml").write_text(path)
    with pytest.warns(UserWarning, match=r"Div failed on ph:0: SamplerDivergedError"):
        results = run_benchmark(load_bench_config(tmp_path / "mrf.yaml"), progress=False)
    (failed,) = results["failed"]
    assert failed["id"] == "ph:0" and failed["solver"] == "Div"
    div = next(m for m in results["means"] if m["solver"] == "Div")
    assert div["n"] == 1 and div["mape_t1"] > 0
    assert "## Failed items (1)" in (tmp_path / "out" / "summary.md").read_text()
    assert (tmp_path / "out" / "figures" / "ph_0.png").is_file()
