"""Shared fixtures: small in-memory prepared slices simulated from a bundled real brain slice (no pipeline),
randomly initialised tiny checkpoints, and a one-thread setting for tests of small tensors."""
from __future__ import annotations

import os

# Single-threaded BLAS: sigpy's ESPIRiT SVDs run ~50x slower when OpenBLAS threads oversubscribe 2 cores.
for _var in ("OPENBLAS_NUM_THREADS",):
    os.environ.setdefault(_var, "1")

from functools import lru_cache

import h5py
import numpy as np
import pytest
import sigpy.mri
import torch
from skimage.transform import resize

from padis_plugin.kspace import fft2c, ifft2c
from padis_plugin.data.prepared import PreparedSlice

DEMO_KEY = "openneuro_ds002748__sub-29__T1w__z088"


@lru_cache(maxsize=4)
def _brain_magnitude(n: int) -> np.ndarray:
    from importlib.resources import files

    with h5py.File(files("padis_plugin") / "bundled" / "brain_demo_slices.h5", "r") as f:
        img = f["slices"][DEMO_KEY][()].astype(np.float64)
    img = resize(img, (n, n), order=1, anti_aliasing=True)
    return img / img.max()


def make_slice(n: int = 64, coils: int = 8, acs: int = 24, seed: int = 0) -> PreparedSlice:
    """Simulated fully sampled prepared slice: bundled T1w brain, smooth phase, unit-RSS birdcage maps,
    normalised so the 99th percentile of the ACS low-resolution image is 1 (as in the published code)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n), indexing="ij")
    a = rng.uniform(-1, 1, 5)
    phase = np.pi / 2 * (a[0] * xx + a[1] * yy + a[2] * xx * yy + a[3] * xx ** 2 + a[4] * yy ** 2)
    image = _brain_magnitude(n) * np.exp(1j * phase)
    maps = sigpy.mri.birdcage_maps((coils, n, n))
    maps = maps / np.sqrt(np.sum(np.abs(maps) ** 2, axis=0, keepdims=True))
    kspace = fft2c(maps * image)
    low = np.zeros_like(kspace)
    c0 = (n - acs) // 2
    low[:, c0:c0 + acs, c0:c0 + acs] = kspace[:, c0:c0 + acs, c0:c0 + acs]
    norm = float(np.percentile(np.sqrt(np.sum(np.abs(ifft2c(low)) ** 2, axis=0)), 99))
    return PreparedSlice(
        id=f"demo:{n}:{seed}", kspace=(kspace / norm).astype(np.complex64), coil_maps=maps.astype(np.complex64),
        reference=(image / norm).astype(np.complex64), norm=1.0, source_file="<memory>", slice_index=0,
        contrast="T1", patient_id=f"sim{seed}",
    )


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
