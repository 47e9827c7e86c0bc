"""Shared fixtures: small in-memory prepared slices simulated from a bundled real brain slice (no pipeline),
randomly initialised tiny checkpoints, and a one-thread setting for tests of small tensors."""
from __future__ import annotations

import os

# Single-threaded BLAS: sigpy's ESPIRiT SVDs run ~50x slower when OpenBLAS threads oversubscribe 2 cores.
for _var in ("OPENBLAS_NUM_THREADS",):
    os.environ.setdefault(_var, "1")

import pytest
import torch

from helpers import make_slice
from padis_plugin.data.prepared import PreparedSlice

@pytest.fixture(scope="session")
def tiny_slice() -> PreparedSlice:
    """64 x 64, 8 coils, fully sampled, normalised; coil maps are the true maps, reference the true image."""
    return make_slice(64, 8)


@pytest.fixture(scope="session")
def slice_factory():
    """``make_slice(n=64, coils=8, acs=24, seed=0)`` for tests that need another size or several slices."""
    return make_slice


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread for a module of tiny-tensor tests: on the shared 2-core machine extra threads
    only contend (measured 4x slower). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, str]:
    """Randomly initialised tiny PaDIS (patch 16, pad 16), EDM and HFS (the grid's default band) checkpoints:
    ``{"padis": path, "edm": path, "hfs": path}``."""
    from padis_plugin.prior import EDMDenoiser, EDMPrecond, HFSDenoiser, PaDISDenoiser, build_unet

    d = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    padis = PaDISDenoiser(EDMPrecond(build_unet("padis-tiny")), patch_size=16, pad=16).save_pretrained(d / "padis")
    edm = EDMDenoiser(EDMPrecond(build_unet("edm-tiny"))).save_pretrained(d / "edm")
    hfs = HFSDenoiser(EDMPrecond(build_unet("edm-tiny"))).save_pretrained(d / "hfs")
    return {"padis": str(padis), "edm": str(edm), "hfs": str(hfs)}
