"""padis-bench's ``mrf`` task end to end on a tiny file (32 x 32, 24 frames, ~400 atoms): every MRF solver runs,
T1 / T2 errors reach results.json and summary.md, an interrupted run resumes, and the config checks its task."""
from __future__ import annotations

import json

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
  - {{name: mrf-admm-dm, label: ADMM-DM, params: {{steps: 10}}}}
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
    monkeypatch.setattr(mrf_run, "_solve", lambda *a, **k: pytest.fail("item recomputed"))
    again = run_benchmark(cfg, progress=False)
    assert again["results"] == rows


def test_mrf_task_refuses_masks_and_non_mrf_files(tmp_path, mrf_file):
    with pytest.raises(ConfigError, match="masks"):
        load_bench_config(_config(tmp_path, mrf_file, "masks: {accelerations: [4]}"))
    bad = tmp_path / "not.h5"
    bad.write_bytes(b"nope")
    with pytest.raises(Exception, match="not.h5"):
        run_benchmark(load_bench_config(_config(tmp_path, bad)), progress=False)
