"""How low the PD maps run: the median over each slice's tissue mask of |PD estimate| / |PD reference| on two
validation slices, for the reference TSMI matched back, MRF-DiPh with the shipped TSMI priors (their default
lambda) and ADMM-DM (its default penalty); seed 0. Quoted in docs/mrf.md ("PD maps run low").

    OMP_NUM_THREADS=1 python scripts/mrf_pd_ratio.py      # needs outputs/mrf128/val.h5 (scripts/make_mrf_data.py)
"""
import numpy as np
import torch
from padis_plugin.mrf.files import MRFFile
from padis_plugin.mrf.matching import match_image
from padis_plugin.solvers.contract import call_solver
from padis_plugin.solvers.registry import build_solver

f = MRFFile("outputs/mrf128/val.h5")
ids = ["open_ms_longitudinal__patient19__study2__T1W__z020", "openneuro_ds002748__sub-25__T1w__z091"]
solvers = {"DiPh EDM": ("mrf-diph", {"checkpoint": "mrf-edm-s"}), "DiPh PaDIS": ("mrf-diph", {"checkpoint": "mrf-padis-s"}),
           "ADMM-DM": ("mrf-admm-dm", {})}
for sid in ids:
    problem = f.problem(sid)
    ref = problem.info.extra["maps"]
    mask = np.asarray(ref.mask, bool)
    pd_ref = np.abs(np.asarray(ref.pd))
    ratios = {}
    back = match_image(problem.physics.dictionary, problem.x_ref[0])
    ratios["reference matched back"] = np.median(np.abs(back.pd.cpu().numpy())[mask] / pd_ref[mask])
    for label, (name, params) in solvers.items():
        z = call_solver(build_solver(name, params), problem.y, problem.physics, torch.Generator().manual_seed(0))
        est = match_image(problem.physics.dictionary, z[0])
        ratios[label] = np.median(np.abs(est.pd.cpu().numpy())[mask] / pd_ref[mask])
    print(sid, {k: round(float(v), 2) for k, v in ratios.items()}, flush=True)
