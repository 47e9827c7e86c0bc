"""deepinv's own samplers with the shipped PaDIS prior on the README's demo slice (the bundled 128 x 128 8-coil
slice, R = 4, 8 ACS lines, mask seed 0; a test patient's, so nothing is tuned on it): deepinv's DPS and DiffPIR
on MultiCoilMRI with the settings this data scale needs (chosen on validation slices), DDRM on deepinv's
single-coil MRI (DDRM needs an SVD of the forward model, which MultiCoilMRI has not), our DDS and deepinv
HQS + PnP for comparison. One thread; writes results.json beside this file.

    OMP_NUM_THREADS=1 python experiments/deepinv_samplers_demo/run.py
"""
import json
import time
from pathlib import Path

import deepinv as dinv
import numpy as np
import torch

from padis_plugin import PaDISDenoiser, build_solver, cartesian_mask, image_metrics, slice_problem
from padis_plugin.bench.runtime import environment
from padis_plugin.data.bundled import demo_dataset
from padis_plugin.data.prepared import PreparedDataset

torch.set_num_threads(1)
slc = PreparedDataset(demo_dataset())[-1]
y, physics, x_ref = slice_problem(slc, cartesian_mask(128, acceleration=4, acs_lines=8, seed=0))
rows = []


def record(name, calls, run, x_ref=x_ref, note=""):
    t = time.time()
    x = run()
    seconds = time.time() - t
    m = image_metrics(x, x_ref)
    rows.append({"sampler": name, "calls": calls, "psnr": round(m["psnr"], 2), "ssim": round(m["ssim"], 3),
                 "seconds": round(seconds, 1), "note": note})
    print(rows[-1], flush=True)


record("zero-filled (multi-coil)", 0, lambda: physics.A_adjoint(y))
gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
for name, params in (("dds", {}), ("pnp", {"algorithm": "HQS", "iterations": 20}),
                     ("deepinv-dps", {"steps": 50}), ("deepinv-dps", {"steps": 100}),
                     ("deepinv-dps", {"steps": 100, "weight": 1.0}),
                     ("diffpir", {"progress": False}),                       # tuned on validation slices
                     ("diffpir", {"final": "iterate", "progress": False}),   # deepinv's own return value
                     ("diffpir", {"iterations": 100, "sigma": 0.05, "zeta": 0.3, "progress": False})):  # untuned
    solver = build_solver(name, {"checkpoint": "padis-s25", **params}, grid=128)
    record(f"{name} {params}", None, lambda: solver(y, physics, generator=gen()))
    rows[-1]["calls"] = int(getattr(solver, "nfe", 0))

# DDRM: deepinv's single-coil MRI on the coil-combined image (the CG-SENSE reference), noise 0.01 per channel
mask = cartesian_mask(128, acceleration=4, acs_lines=8, seed=0)
single = dinv.physics.MRI(mask=mask[None, None], img_size=(1, 2, 128, 128),
                          noise_model=dinv.physics.GaussianNoise(sigma=0.01, rng=torch.Generator().manual_seed(0)))
y1 = single(x_ref)
record("zero-filled (single-coil MRI)", 0, lambda: single.A_adjoint(y1))
prior = PaDISDenoiser(pretrained="padis-s25", rng=torch.Generator().manual_seed(0))
for steps in (20, 100):
    ddrm = dinv.sampling.DDRM(prior, sigmas=np.linspace(1, 0, steps), eta=0.85)
    torch.manual_seed(0)
    record(f"deepinv DDRM, single-coil MRI, {steps} levels", steps - 1,
           lambda: ddrm(y1, single), note="single-coil MRI (DecomposablePhysics), noise 0.01")

out = {"slice": slc.id, "acceleration": 4, "acs_lines": 8, "mask_seed": 0, "prior": "padis-s25",
       "environment": environment(torch.device("cpu"), 1), "threads": 1, "rows": rows}
Path(__file__).with_name("results.json").write_text(json.dumps(out, indent=1) + "\n")
