"""Plain helpers shared by several test files (fixtures stay in conftest.py): simulated prepared slices, the toy
Gaussian-prior MRI problem with its closed-form posterior, and synthetic training data and configs. Test files
import from here, never from each other."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import h5py
import numpy as np
import sigpy.mri
import torch
import yaml
from deepinv.models import Denoiser
from deepinv.physics import MultiCoilMRI
from skimage.transform import resize

from padis_plugin.data.prepared import PreparedSlice, write_prepared
from padis_plugin.kspace import fft2c, ifft2c


# ------------------------------------------------------------------------- simulated prepared slices
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


# ------------------------------------------- toy problem with an exact Gaussian prior (sampler tests)
class GaussianDenoiser(Denoiser):
    """Exact MMSE denoiser of the prior x ~ N(0, s0^2 I): D(x, sigma) = s0^2 / (s0^2 + sigma^2) x."""

    def __init__(self, s0=1.0):
        super().__init__()
        self.s0 = s0

    def forward(self, x, sigma, **kwargs):
        return x * (self.s0 ** 2 / (self.s0 ** 2 + sigma ** 2))


def toy_problem(H=8, C=1, sn=0.01, seed=0):
    """Small multi-coil MRI problem with a null space: random coil maps, 6 of 8 columns sampled."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.randn(1, C, H, H, dtype=torch.complex64, generator=g) * 0.7
    mask = torch.zeros(1, 1, H, H)
    mask[..., ::2] = 1
    mask[..., 3:5] = 1

    def physics(b=1):
        return MultiCoilMRI(mask=mask.expand(b, 1, H, H), coil_maps=maps.expand(b, C, H, H), img_size=(b, 2, H, H))

    x = torch.randn(1, 2, H, H, generator=g)
    y = physics().A(x)
    y = y + sn * torch.randn(y.shape, generator=g) * mask[:, :, None]
    return y, physics


def gaussian_posterior(y, physics, s0, sn):
    """Closed-form Gaussian posterior (mean, covariance) for y = A x + N(0, sn^2), x ~ N(0, s0^2 I)."""
    p = physics()
    n = y.shape[-1] * y.shape[-2] * 2
    basis = torch.eye(n).view(n, 2, y.shape[-2], y.shape[-1])
    A = torch.stack([p.A(basis[k:k + 1]).flatten() for k in range(n)], 1).double()
    rows = A.abs().sum(1) > 0  # sampled k-space entries only
    A, yv = A[rows], y.flatten()[rows].double()
    cov = torch.linalg.inv(A.T @ A / sn ** 2 + torch.eye(n, dtype=torch.float64) / s0 ** 2)
    return (cov @ A.T @ yv / sn ** 2).view(1, *basis.shape[1:]).float(), cov


# ----------------------------------------------------------- synthetic training data and configs
def make_train_dataset(path, n_patients=4, per_patient=2, n=32, seed=0) -> Path:
    """Synthetic prepared file: discs with smooth texture and phase, patients p0.. with alternating contrasts."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-1:1:n * 1j, -1:1:n * 1j]
    slices = []
    for p in range(n_patients):
        for s in range(per_patient):
            r = rng.uniform(0.5, 0.8)
            img = ((xx ** 2 + yy ** 2) < r ** 2) * (1 + 0.3 * np.sin(rng.uniform(2, 6) * xx + s))
            img = (img * np.exp(1j * rng.uniform(-1, 1) * (xx + yy))).astype(np.complex64)
            slices.append(PreparedSlice(
                id=f"p{p}:{s}", kspace=np.fft.fft2(img, norm="ortho")[None].astype(np.complex64),
                coil_maps=np.ones((1, n, n), np.complex64), reference=img, norm=1.0, source_file=f"p{p}.h5",
                slice_index=s, contrast="T2" if p % 2 == 0 else "T1", patient_id=f"p{p}"))
    return write_prepared(path, slices)


def train_cfg_dict(data_path, kind="padis", steps=4, **sections) -> dict:
    """A tiny training config (as a dict) on ``data_path``; ``sections`` update its sections key by key."""
    d = {"kind": kind, "model": {"name": f"{kind}-tiny"},
         "data": {"path": str(data_path), "num_slices": 4, "seed": 0},
         "patch": {"sizes": [8, 16], "probs": [0.5, 0.5], "batch": [16, 8]},
         "optim": {"lr": 2e-3, "warmup_steps": 3, "grad_clip": 1.0e4},
         "ema": {"halflife_steps": 5.0},
         "run": {"steps": steps, "batch": 4, "checkpoint_every": 100, "progress": False, "seed": 7}}
    for key, value in sections.items():
        d.setdefault(key, {}).update(value)
    return d


def _tiny_train_data(tmp_path) -> Path:
    """Two 32 x 32 single-coil disc slices (two patients) in ``tmp_path / train.h5``."""
    n, slices = 32, []
    yy, xx = np.mgrid[-1:1:n * 1j, -1:1:n * 1j]
    for p in range(2):
        img = (((xx ** 2 + yy ** 2) < 0.5) * (1 + 0.2 * p)).astype(np.complex64)
        slices.append(PreparedSlice(id=f"p{p}:0", kspace=np.fft.fft2(img, norm="ortho")[None].astype(np.complex64),
                                    coil_maps=np.ones((1, n, n), np.complex64), reference=img, norm=1.0,
                                    source_file=f"p{p}.h5", slice_index=0, contrast="T1", patient_id=f"p{p}"))
    return write_prepared(tmp_path / "train.h5", slices)


def train_config(tmp_path, steps=3, **run) -> Path:
    """A tiny padis training config file (checkpoint every step) on two slices; ``run`` updates its run section."""
    d = {"kind": "padis", "model": {"name": "padis-tiny"}, "data": {"path": str(_tiny_train_data(tmp_path))},
         "patch": {"sizes": [8], "probs": [1.0], "batch": [4]},
         "optim": {"lr": 1e-3, "warmup_steps": 1}, "ema": {"halflife_steps": 2.0},
         "run": {"steps": steps, "checkpoint_every": 1, "progress": False, "seed": 1, "device": "cpu", **run}}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def run_train(cfg, out, *more):
    """``padis-train --config cfg --out out --no-progress *more``; returns its exit code."""
    from padis_plugin.cli.train import main

    return main(["--config", str(cfg), "--out", str(out), "--no-progress", *map(str, more)])
