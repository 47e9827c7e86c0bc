"""The README's solver plugin contract, end to end: the example package in examples/third_party_solver is
installed (as pip lays out a wheel: the module plus a dist-info with its entry points) and its solver runs
by name through the registry and the bench's call path."""
import shutil
import tomllib
from pathlib import Path

import torch

from padis_plugin.acquisition.masks import cartesian_mask
from padis_plugin.metrics import image_metrics
from padis_plugin.acquisition import slice_problem
from padis_plugin.solvers.registry import available_solvers, build_solver
from padis_plugin.solvers.contract import call_solver, solver_nfe

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "third_party_solver"


def _install(site: Path) -> str:
    """Install the example into ``site`` the way a wheel install would; return its solver name."""
    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    shutil.copy(EXAMPLE / "padis_example_solver.py", site)
    info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    eps = meta["entry-points"]["padis_plugin.solvers"]
    (info / "entry_points.txt").write_text("[padis_plugin.solvers]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
    return next(iter(eps))


def test_installed_example_solver_runs_by_name(tmp_path, monkeypatch, tiny_slice):
    name = _install(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert name == "tikhonov-cg" and name in available_solvers()
    solver = build_solver(name, {"lambda": 0.01, "iterations": 15})
    y, physics, x = slice_problem(tiny_slice, cartesian_mask(64, 4, 8, seed=0))
    out = call_solver(solver, y, physics, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and solver_nfe(solver) == 0
    assert image_metrics(out, x)["psnr"] > image_metrics(physics.A_adjoint(y), x)["psnr"]
