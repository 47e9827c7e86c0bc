"""padis-bench: results/summary/figures, resume after an interruption, atomic outputs, paired differences,
uncertainty maps, bad inputs, and sharding over two gloo processes. Tiny synthetic data (32 x 32, 4 coils)."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from padis_plugin.bench.items import generator_seed, item_key
from padis_plugin.bench.run import load_bench_config, run_benchmark
from padis_plugin.cli.bench import main
from padis_plugin.data.prepared import write_prepared
from padis_plugin.acquisition.masks import cartesian_mask
from padis_plugin.metrics import image_metrics, paired_difference
from padis_plugin.acquisition import slice_problem
from padis_plugin.solvers.registry import register_solver

FAKE = "test-fake-noisy"
CALLS = {"n": 0, "raise_at": None}


class FakeSolver(torch.nn.Module):
    """Zero-filled plus generator noise: deterministic given the generator, counts its calls."""

    nfe = 3

    def __init__(self, scale=0.05):
        super().__init__()
        self.scale = float(scale)

    def forward(self, y, physics, generator=None):
        CALLS["n"] += 1
        if CALLS["raise_at"] is not None and CALLS["n"] >= CALLS["raise_at"]:
            raise KeyboardInterrupt
        x = physics.A_adjoint(y)
        return x + self.scale * torch.randn(x.shape, generator=generator, device=x.device)


try:
    register_solver(FAKE)(lambda params=None, device="cpu": FakeSolver(**(params or {})))
except Exception:  # already registered (module imported twice)
    pass


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.update(n=0, raise_at=None)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    from helpers import make_slice

    slices = []
    for i, contrast in enumerate(["T1", "T2", "T1"]):
        s = make_slice(n=32, coils=4, acs=8, seed=i)
        slices.append(dataclasses.replace(s, id=f"vol{i}:0", contrast=contrast, patient_id=f"p{i}"))
    return write_prepared(tmp_path_factory.mktemp("data") / "tiny.h5", slices)


def _config(tmp_path, data_file, solvers=None, name="c.yaml", **extra):
    cfg = {"name": "tiny", "device": "cpu", "data": {"path": str(data_file)},
           "masks": {"accelerations": [4], "acs_lines": 4, "seeds": [0]},
           "solvers": solvers or [{"name": FAKE, "label": "Fake"}], "output": {"figures": False}, **extra}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(path, out, *more):
    return main(["--config", str(path), "--out", str(out), "--no-progress", *more])


def test_list_solvers(capsys):
    assert main(["--list-solvers"]) == 0
    names = capsys.readouterr().out.splitlines()
    assert {"zero-filled", "wavelet-l1", FAKE} <= set(names)


def test_a_plain_deepinv_optimiser_runs_in_the_bench(tmp_path, data_file):
    """deepinv's HQS with a PnP prior takes no generator: the bench must not pass one, and seeds it instead."""
    import deepinv as dinv

    @register_solver("test-stock-hqs")
    def _factory(params, device):
        prior = dinv.optim.PnP(dinv.models.WaveletDenoiser(level=2, wv="db4"))
        return dinv.optim.HQS(data_fidelity=dinv.optim.data_fidelity.L2(), prior=prior, stepsize=10.0,
                              sigma_denoiser=0.01, max_iter=3)

    path = _config(tmp_path, data_file, [{"name": "test-stock-hqs", "label": "HQS"},
                                         {"name": "zero-filled", "label": "ZF"}], reference="ZF")
    assert _run(path, tmp_path / "out") == 0
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    hqs = {r["id"]: r["psnr"] for r in rows if r["solver"] == "HQS"}
    zf = {r["id"]: r["psnr"] for r in rows if r["solver"] == "ZF"}
    assert len(hqs) == 3 and all(hqs[k] > zf[k] for k in hqs)


def test_run_writes_consistent_results(tmp_path, data_file):
    solvers = [{"name": "zero-filled", "label": "ZF"}, {"name": FAKE, "label": "Fake", "training_size": 25}]
    path = _config(tmp_path, data_file, solvers, reference="ZF", output={"figures": True},
                   masks={"accelerations": [4, 8], "acs_lines": 4, "seeds": [0, 1]})
    out = tmp_path / "out"
    assert _run(path, out) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["dataset"]["n_slices"] == 3 and set(res["versions"]) >= {"torch", "deepinv", "padis_plugin", "numpy"}
    assert res["device"]["type"] == "cpu" and res["device"]["cpu"]
    assert res["config"]["solvers"][1]["training_size"] == 25
    rows = res["results"]
    assert len(rows) == 3 * 2 * 2 * 2
    assert {"id", "contrast", "patient", "R", "seed", "psnr", "ssim", "nrmse", "seconds", "nfe"} <= set(rows[0])
    # one zero-filled item recomputed by hand
    from padis_plugin.data.prepared import PreparedDataset
    slc = PreparedDataset(data_file)["vol1:0"]
    y, physics, x_ref = slice_problem(slc, cartesian_mask(32, 8, 4, 1))
    want = image_metrics(physics.A_adjoint(y), x_ref)
    got = next(r for r in rows if r["id"] == "vol1:0" and r["solver"] == "ZF" and r["R"] == 8 and r["seed"] == 1)
    assert got["contrast"] == "T2" and got["patient"] == "p1" and got["nfe"] == 0
    for m in ("psnr", "ssim", "nrmse"):
        assert got[m] == pytest.approx(want[m], rel=1e-6)
    # means and paired differences by hand
    fake4 = [r for r in rows if r["solver"] == "Fake" and r["R"] == 4]
    zf4 = {(r["id"], r["seed"]): r for r in rows if r["solver"] == "ZF" and r["R"] == 4}
    mean = next(m for m in res["means"] if m["solver"] == "Fake" and m["R"] == 4 and m["contrast"] == "all")
    assert mean["n"] == 6 and mean["psnr"] == pytest.approx(np.mean([r["psnr"] for r in fake4]))
    t2 = next(m for m in res["means"] if m["solver"] == "Fake" and m["R"] == 4 and m["contrast"] == "T2")
    assert t2["n"] == 2 and mean["nfe"] == 3
    d = [r["psnr"] - zf4[(r["id"], r["seed"])]["psnr"] for r in fake4]
    pair = next(p for p in res["paired"] if p["a"] == "Fake" and p["b"] == "ZF" and p["R"] == 4
                and p["contrast"] == "all")
    assert pair["n"] == 6 and pair["psnr"] == pytest.approx(np.mean(d)) and pair["psnr_sd"] == pytest.approx(np.std(d))
    assert (pair["psnr"], pair["psnr_sd"]) == pytest.approx(paired_difference(
        [r["psnr"] for r in fake4], [zf4[(r["id"], r["seed"])]["psnr"] for r in fake4]))
    # summary: one table per R with an S column, per-contrast breakdown, paired differences
    md = (out / "summary.md").read_text()
    assert "## R = 4 (all contrasts, N = 6)" in md and "## R = 8" in md and "| Solver | S | PSNR (dB)" in md
    assert "by contrast" in md and "Fake - ZF" in md and f"{mean['psnr']:.2f} ± {mean['psnr_sd']:.2f}" in md
    # figures per slice and R, nothing temporary left behind
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(
        f"vol{i}_0_R{r}.png" for i in range(3) for r in (4, 8))
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_generator_seed_is_stable_and_used(tmp_path, data_file):
    assert generator_seed(0, "a:1", 4, 0) == generator_seed(0, "a:1", 4.0, 0)
    assert len({generator_seed(0, "a:1", 4, s) for s in range(5)} | {generator_seed(1, "a:1", 4, 0)}) == 6
    out = tmp_path / "out"
    assert _run(_config(tmp_path, data_file), out) == 0
    rows = json.loads((out / "results.json").read_text())["results"]
    assert rows[0]["generator_seed"] == generator_seed(0, rows[0]["id"], 4, 0)


def test_resume_after_interrupt_skips_finished_items(tmp_path, data_file):
    path = _config(tmp_path, data_file, masks={"accelerations": [4], "acs_lines": 4, "seeds": [0, 1]})
    ref_out, out = tmp_path / "ref", tmp_path / "out"
    assert _run(path, ref_out) == 0
    total = CALLS["n"]
    assert total == 6
    CALLS.update(n=0, raise_at=4)  # interrupted during the 4th item
    assert _run(path, out) == 130
    assert not (out / "results.json").exists() and not (out / "summary.md").exists()
    finished = [json.loads(x) for x in (out / "partial" / "rank0.jsonl").read_text().splitlines()]
    assert len(finished) == 3
    CALLS.update(n=0, raise_at=None)
    assert _run(path, out) == 0
    assert CALLS["n"] == total - 3  # finished items were not recomputed
    a = json.loads((ref_out / "results.json").read_text())["results"]
    b = json.loads((out / "results.json").read_text())["results"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(a) == strip(b)
    # a finished run reruns without computing anything
    CALLS.update(n=0)
    assert _run(path, out) == 0 and CALLS["n"] == 0


def _rows(out):
    return {(r["id"], r["solver"]): r for r in json.loads((out / "results.json").read_text())["results"]}


def test_changed_config_reuses_unchanged_solvers_only(tmp_path, data_file, capsys):
    out = tmp_path / "out"
    two = [{"name": FAKE, "label": "Fake"}, {"name": FAKE, "label": "Other", "params": {"scale": 0.1}}]
    assert _run(_config(tmp_path, data_file, two), out) == 0 and CALLS["n"] == 6
    before = _rows(out)
    # one solver's parameters change and one solver is added: only their items run
    changed = [two[0], {**two[1], "params": {"scale": 0.2}}, {"name": "zero-filled", "label": "ZF"}]
    CALLS.update(n=0)
    capsys.readouterr()
    assert _run(_config(tmp_path, data_file, changed, name="d.yaml"), out) == 0
    assert CALLS["n"] == 3 and "reusing 3 finished item(s)" in capsys.readouterr().out
    after = _rows(out)
    assert all(after[k] == before[k] for k in before if k[1] == "Fake")  # timings too: not recomputed
    assert all(after[k]["psnr"] != before[k]["psnr"] for k in before if k[1] == "Other")
    assert len(after) == 9
    # the global seed changes every item
    CALLS.update(n=0)
    assert _run(_config(tmp_path, data_file, changed, name="e.yaml", seed=5), out) == 0 and CALLS["n"] == 6
    assert json.loads((out / "results.json").read_text())["config"]["seed"] == 5
    # --overwrite recomputes everything
    CALLS.update(n=0)
    assert _run(_config(tmp_path, data_file, changed, name="e.yaml", seed=5), out, "--overwrite") == 0
    assert CALLS["n"] == 6


def test_committed_results_are_reused_without_partial_files(tmp_path, data_file):
    """A fresh clone has results.json and resolved_config.json but no partial files or recons."""
    out = tmp_path / "out"
    path = _config(tmp_path, data_file)
    assert _run(path, out) == 0
    before = _rows(out)
    shutil.rmtree(out / "partial")
    CALLS.update(n=0)
    assert _run(path, out) == 0 and CALLS["n"] == 0 and _rows(out) == before
    shutil.rmtree(out / "partial")  # and extended by one solver
    more = _config(tmp_path, data_file, [{"name": FAKE, "label": "Fake"}, {"name": FAKE, "label": "Big",
                                          "params": {"scale": 0.5}}], name="d.yaml")
    assert _run(more, out) == 0 and CALLS["n"] == 3
    assert all(_rows(out)[k] == v for k, v in before.items())


def test_reuse_from_takes_identical_items_of_another_folder_under_a_new_label(tmp_path, data_file, capsys):
    """output.reuse_from: items of another results folder whose solver settings match are taken over (relabelled),
    a solver whose settings differ there is computed here."""
    first = tmp_path / "first"
    two = [{"name": FAKE, "label": "Fake"}, {"name": FAKE, "label": "Other", "params": {"scale": 0.1}}]
    assert _run(_config(tmp_path, data_file, two), first) == 0
    before = _rows(first)
    mine = [{"name": FAKE, "label": "Fake renamed"}, {"name": FAKE, "label": "Other here", "params": {"scale": 0.3}}]
    reuse = {"figures": False, "reuse_from": [{"dir": str(first), "solvers": {"Fake renamed": "Fake",
                                                                              "Other here": "Other"}}]}
    CALLS.update(n=0)
    capsys.readouterr()
    with pytest.warns(UserWarning, match="differs"):
        assert _run(_config(tmp_path, data_file, mine, name="r.yaml", output=reuse), tmp_path / "second") == 0
    assert CALLS["n"] == 3 and "taking 3 finished item(s)" in capsys.readouterr().out
    after = _rows(tmp_path / "second")
    for (sid, label), row in before.items():
        if label == "Fake":
            assert after[(sid, "Fake renamed")]["psnr"] == row["psnr"]
            assert after[(sid, "Fake renamed")]["reused_from"] == str(first)


def test_missing_figure_reruns_only_the_items_it_needs(tmp_path, data_file):
    out = tmp_path / "out"
    path = _config(tmp_path, data_file, output={"figures": True, "save_recons": False})
    assert _run(path, out) == 0 and CALLS["n"] == 3
    shutil.rmtree(out / "partial")
    shutil.rmtree(out / "recons")
    (out / "figures" / "vol1_0_R4.png").unlink()
    CALLS.update(n=0)
    assert _run(path, out) == 0 and CALLS["n"] == 1  # the one slice whose figure was missing
    assert (out / "figures" / "vol1_0_R4.png").is_file()


def test_figures_are_redrawn_when_a_solver_they_show_changes(tmp_path, data_file):
    out = tmp_path / "out"
    fig = out / "figures" / "vol0_0_R4.png"
    one = [{"name": FAKE, "label": "Fake"}]
    assert _run(_config(tmp_path, data_file, one, output={"figures": True}), out) == 0
    first = fig.read_bytes()
    added = one + [{"name": "zero-filled", "label": "ZF"}]  # only added: the old figure is not wrong, it stays
    assert _run(_config(tmp_path, data_file, added, name="d.yaml", output={"figures": True}), out) == 0
    assert fig.read_bytes() == first
    changed = [{**one[0], "params": {"scale": 0.3}}, added[1]]  # a shown solver changed: redrawn
    assert _run(_config(tmp_path, data_file, changed, name="e.yaml", output={"figures": True}), out) == 0
    assert fig.is_file() and fig.read_bytes() != first


def test_unknown_results_folder_is_refused_unless_overwrite(tmp_path, data_file, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("{}")
    capsys.readouterr()
    assert _run(_config(tmp_path, data_file), out) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "unknown configuration" in err and len(err.strip().splitlines()) == 1
    assert _run(_config(tmp_path, data_file), out, "--overwrite") == 0


def test_failure_leaves_no_final_outputs(tmp_path, data_file):
    out = tmp_path / "out"
    CALLS["raise_at"] = 2
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(load_bench_config(_config(tmp_path, data_file), out=out), progress=False)
    names = {p.name for p in out.iterdir()}
    assert "results.json" not in names and "summary.md" not in names
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_uncertainty_maps(tmp_path, data_file):
    solvers = [{"name": FAKE, "label": "Fake"}, {"name": "zero-filled", "label": "ZF"}]
    path = _config(tmp_path, data_file, solvers,
                   uncertainty={"enabled": True, "seeds": 3, "solvers": ["Fake"], "crop": [24, 24]})
    out = tmp_path / "out"
    assert _run(path, out) == 0
    res = json.loads((out / "results.json").read_text())
    per = res["uncertainty"]["per_slice"]
    assert len(per) == 3 and {u["solver"] for u in per} == {"Fake"}
    assert len([r for r in res["results"] if r["solver"] == "Fake"]) == 9  # 3 slices x 3 masks
    assert len([r for r in res["results"] if r["solver"] == "ZF"]) == 3    # only the benchmark's mask seed
    for u in per:
        std = np.load(out / u["map"])
        assert std.shape == (32, 32) and (std >= 0).all() and u["mean_std_brain"] > 0
        assert (out / u["map"].replace(".npy", ".png")).is_file()
    # results kept, recons and partial files gone (a fresh clone): only the items the maps need are rerun
    for name in ("partial", "recons", "uncertainty"):
        shutil.rmtree(out / name)
    CALLS.update(n=0)
    assert _run(path, out) == 0 and CALLS["n"] == 9
    again = json.loads((out / "results.json").read_text())["uncertainty"]["per_slice"]
    assert [u["mean_std_brain"] for u in again] == pytest.approx([u["mean_std_brain"] for u in per])
    # the in-brain mean matches a recomputation from the saved recons
    from padis_plugin.bench.store import recon_path
    from padis_plugin.data.prepared import PreparedDataset
    from padis_plugin.metrics import brain_mask, center_crop, pixelwise_std
    u = per[0]
    stack = np.stack([np.load(recon_path(out, u["id"], "Fake", 4, s)) for s in range(3)])
    std = center_crop(pixelwise_std(stack), (24, 24))
    ref = center_crop(PreparedDataset(data_file)[u["id"]].reference, (24, 24))
    assert u["mean_std_brain"] == pytest.approx(float(std[brain_mask(ref)].mean()), rel=1e-5)
    assert res["uncertainty"]["means"][0]["n"] == 3
    assert "## Uncertainty" in (out / "summary.md").read_text()


@pytest.mark.parametrize("change, needle", [
    ({"solvers": [{"name": "no-such-solver"}]}, "solvers.0.name"),
    ({"masks": {"accelerations": [20]}}, "outside [1, 16]"),
    ({"data": {"path": "missing/data.h5"}}, "dataset not found"),
    ({"masks": {"acs_lines": 4, "accelerations": [4], "file": "MASK"}}, "does not match the k-space"),
    ({"masks": {"acs_lines": 30, "accelerations": [4]}}, "acs_lines"),
    ({"solvers": [{"name": "wavelet-l1", "params": {"lamda": 1}}]}, "lamda"),
    ({"bogus": 1}, "unknown key 'bogus'"),
])
def test_bad_inputs_exit_2_with_one_line(tmp_path, data_file, capsys, change, needle):
    if "masks" in change and change["masks"].get("file") == "MASK":
        np.save(tmp_path / "mask.npy", np.ones((16, 16), np.float32))
        change = {"masks": {**change["masks"], "file": str(tmp_path / "mask.npy")}}
    path = _config(tmp_path, data_file, **change) if "solvers" not in change else \
        _config(tmp_path, data_file, change["solvers"])
    out = tmp_path / "out"
    assert _run(path, out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and needle in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_missing_config_and_no_args(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert main([]) == 2


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="torchrun")
def test_torchrun_two_gloo_processes_merge(tmp_path, data_file):
    path = _config(tmp_path, data_file, [{"name": "zero-filled"}])
    out, single = tmp_path / "ddp", tmp_path / "single"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "padis_plugin.cli.bench", "--config", str(path), "--out", str(out), "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in (out / "partial").iterdir()) == ["rank0.jsonl", "rank1.jsonl"]
    assert _run(path, single) == 0
    a = json.loads((out / "results.json").read_text())
    b = json.loads((single / "results.json").read_text())
    assert a["device"]["world_size"] == 2 and len(a["results"]) == 3
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(a["results"]) == strip(b["results"])
    assert item_key("vol0:0", "zero-filled", 4, 0) in (out / "partial" / "rank0.jsonl").read_text()


def test_more_ranks_than_gpus_share_them(monkeypatch):
    """``cuda`` / ``auto`` map rank k to GPU k mod the GPU count (the 256 tables ran 4 ranks on one H200); without
    CUDA, ``auto`` is the CPU and ``cuda`` a clear ConfigError."""
    from padis_plugin.bench.runtime import resolve_device
    from padis_plugin.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", local_rank=3) == torch.device("cpu")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda", local_rank=1)
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    assert [resolve_device(spec, local_rank=k) for spec, k in (("cuda", 3), ("auto", 2), ("cuda:1", 0))] == [
        torch.device("cuda:1"), torch.device("cuda:0"), torch.device("cuda:1")]
    assert chosen == [torch.device("cuda:1"), torch.device("cuda:0"), torch.device("cuda:1")]


class _DivergesOn(torch.nn.Module):
    """Zero-filled, except on slices whose id is in ``bad``: a diverged sampler there."""

    nfe = 1

    def __init__(self, bad):
        super().__init__()
        self.bad = set(bad)

    def forward(self, y, physics, generator=None):
        from padis_plugin.solvers.base import SamplerDivergedError

        if round(y.abs().sum().item(), 2) in self.bad or "all" in self.bad:
            raise SamplerDivergedError("DDS: non-finite iterate at level 3 (try a smaller gamma)")
        return physics.A_adjoint(y)


def test_a_diverged_item_is_recorded_as_failed_and_the_run_goes_on(tmp_path, data_file, capsys):
    """A sampler that diverges on one item: that item is a failed row (its message in results.json and
    summary.md, left out of the means), every other item runs, exit 0 with a warning; exit 2 when all fail."""
    from padis_plugin.data.prepared import PreparedDataset

    ds = PreparedDataset(data_file)
    bad_y = round(slice_problem(ds["vol1:0"], cartesian_mask(32, 4, 4, 0)).y.abs().sum().item(), 2)
    register_solver("test-diverges")(lambda params=None, device="cpu": _DivergesOn(params["bad"]))
    path = _config(tmp_path, data_file, [{"name": "test-diverges", "label": "Div | A", "params": {"bad": [bad_y]}},
                                         {"name": "zero-filled", "label": "ZF"}])
    with pytest.warns(UserWarning, match=r"Div \| A failed on vol1:0 \(R=4, seed 0\): SamplerDivergedError"):
        assert _run(path, tmp_path / "out") == 0
    assert "warning: 1 of 6 items failed" in capsys.readouterr().err
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    (failed,) = res["failed"]
    assert failed["id"] == "vol1:0" and failed["solver"] == "Div | A" and "gamma" in failed["error"]
    row = next(r for r in res["results"] if r["solver"] == "Div | A" and r["id"] == "vol1:0")
    assert row["psnr"] is None and row["error"].startswith("SamplerDivergedError")
    assert next(m for m in res["means"] if m["solver"] == "Div | A" and m["contrast"] == "all")["n"] == 2
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "## Failed items (1)" in summary and "| Div \\| A |" in summary   # a | in a label keeps the table
    assert _run(path, tmp_path / "out") == 0   # finished, failed item included: nothing reruns
    path = _config(tmp_path, data_file, [{"name": "test-diverges", "params": {"bad": ["all"]}}], name="all.yaml")
    with pytest.warns(UserWarning):
        assert _run(path, tmp_path / "all") == 2
    assert "error: 3 of 3 items failed" in capsys.readouterr().err
