"""Patch-seam check of the fast sampler: PaDIS DDS at 10 / 25 / 100 calls on one test slice (R = 7), with the
|error| maps on one scale, to look for the 32 px tiling grid at low call counts.

    python scripts/check_patch_seams.py outputs/protocol/prepared_128.h5 experiments/frontier/seams_T2_R7.png
"""
from __future__ import annotations

import sys

import matplotlib
import numpy as np
import torch

from padis_plugin.bench.items import generator_seed
from padis_plugin.data.prepared import PreparedDataset
from padis_plugin.acquisition import CartesianLines, make_problem
from padis_plugin.solvers.registry import build_solver

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SLICE, R, CALLS = "patient12__study1_T2:4", 7.0, (10, 25, 100)


def main(data, out):
    torch.set_num_threads(1)
    slc = PreparedDataset(data, ids=[SLICE])[0]
    y, physics, x_ref = make_problem(slc, CartesianLines(R, acs_lines=8), seed=0)
    ref = torch.linalg.vector_norm(x_ref[0], dim=0).numpy()
    vmax = np.percentile(ref, 99.5)
    fig, ax = plt.subplots(2, len(CALLS) + 1, figsize=(13, 6.5))
    for j, steps in enumerate(CALLS):
        gen = torch.Generator().manual_seed(generator_seed(0, SLICE, R, 0))  # the benchmark's generator
        mag = torch.linalg.vector_norm(build_solver("padis-dds", {"steps": steps})(y, physics, generator=gen)[0], dim=0)
        ax[0, j].imshow(mag.numpy(), cmap="gray", vmin=0, vmax=vmax)
        ax[0, j].set_title(f"PaDIS DDS {steps} calls")
        ax[1, j].imshow(np.abs(mag.numpy() - ref), cmap="magma", vmin=0, vmax=0.25 * ref.max())
        ax[1, j].set_title("|error| (0 - 0.25 max)")
    ax[0, -1].imshow(ref, cmap="gray", vmin=0, vmax=vmax)
    ax[0, -1].set_title("reference")
    ax[1, -1].axis("off")
    for a in ax.flat:
        a.set_xticks([])
        a.set_yticks([])
    fig.savefig(out, dpi=90, bbox_inches="tight")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
