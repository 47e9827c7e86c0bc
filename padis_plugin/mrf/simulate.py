"""Simulated MRF acquisitions from quantitative maps: reference TSMI and noisy spiral k-space of one slice.

Data are made off the matching grid (an "inverse crime" otherwise): every voxel's fingerprint is simulated by EPG at
its own (T1, T2), not looked up as the dictionary's nearest atom (the published code uses a KD-tree look-up, spec
section 5). The TSMI is that fingerprint compressed with the dictionary's subspace, X = PD conj(V) s
(:mod:`.dictionary` conventions), and the k-space is the unweighted forward NUFFT of the subspace time series
V^T X (as the published synthetic data: the forward model of the reference TSMI), plus white noise.

SNR definition: ``snr_db = 20 log10(rms(k) / sigma)``, with rms(k) = sqrt(mean |k|^2) over all samples of the
noiseless raw (unweighted) k-space and sigma the standard deviation of the complex noise (E|n|^2 = sigma^2, i.e.
sigma / sqrt(2) in each of the real and imaginary parts). ``snr_db = inf``: no noise.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from ..errors import ConfigError
from .epg import simulate_fisp
from .maps import QuantitativeMaps
from .physics import MRFPhysics
from .sequence import FISPSequence, jiang_fisp
from .spiral import MRFTrajectory, build_trajectory

_INTS = {"matrix": 8, "frames": 1, "samples": 2, "interleaves": 1, "rank": 1, "atoms": 1}  # field: minimum


@dataclass(frozen=True)
class MRFSetup:
    """One simulated MRF acquisition setting (everything but the maps and the noise draw).

    ``matrix`` x ``matrix`` images; ``frames`` TRs of Jiang's IR-FISP train (:func:`.sequence.jiang_fisp`), one
    spiral interleaf of ``samples`` points per frame out of ``interleaves`` rotations with density power
    ``density_power`` (:func:`.spiral.build_trajectory`); a rank-``rank`` subspace of a dictionary of about
    ``atoms`` (T1, T2) pairs (:func:`.dictionary.tissue_grid`); noise at ``snr_db`` (module docstring).
    """

    matrix: int = 128
    frames: int = 200
    samples: int = 512
    interleaves: int = 200
    rank: int = 5
    atoms: int = 10000
    snr_db: float = 40.0
    density_power: float = 2.0

    def __post_init__(self):
        for name, lo in _INTS.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ConfigError(f"MRFSetup: {name} must be an integer >= {lo}, got {v!r}")
            object.__setattr__(self, name, int(v))
        for name in ("snr_db", "density_power"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or math.isnan(v):
                raise ConfigError(f"MRFSetup: {name} must be a number, got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.snr_db == -math.inf:
            raise ConfigError("MRFSetup: snr_db must be > -inf (inf: noiseless)")
        if not (math.isfinite(self.density_power) and self.density_power >= 1.0):
            raise ConfigError(f"MRFSetup: density_power must be a finite number >= 1, got {self.density_power}")
        if self.frames > 1000:
            raise ConfigError(f"MRFSetup: frames must be <= 1000 (Jiang's train), got {self.frames}")
        if self.rank > self.frames:
            raise ConfigError(f"MRFSetup: rank must be <= frames ({self.frames}), got {self.rank}")

    def to_dict(self) -> dict:
        """Plain JSON-able dict (``snr_db`` inf stays a float: json writes ``Infinity``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MRFSetup":
        if not isinstance(d, dict):
            raise ConfigError(f"MRFSetup.from_dict: expected a dict, got {type(d).__name__}")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"MRFSetup: unknown field(s) {sorted(unknown)}")
        return cls(**d)

    def sequence(self) -> FISPSequence:
        """The first ``frames`` TRs of Jiang's IR-FISP train."""
        return jiang_fisp(self.frames)

    def trajectory(self) -> MRFTrajectory:
        """The spiral trajectory (sequential rotations)."""
        return build_trajectory(self.matrix, self.frames, self.samples, self.interleaves, self.density_power)


def reference_tsmi(maps: QuantitativeMaps, sequence: FISPSequence, basis, chunk: int = 4096) -> torch.Tensor:
    """Reference TSMI X = PD conj(V) s(T1, T2) per voxel inside ``maps.mask`` (0 outside).

    :param maps: T1 / T2 in seconds, complex PD, (H, W) each.
    :param basis: V, complex (rank, frames) (:attr:`.dictionary.MRFDictionary.basis`); the result is on its device.
    :param chunk: voxels simulated at a time (memory: chunk x frames float64).
    :return: complex64 (rank, H, W).
    """
    basis = torch.as_tensor(basis)
    if basis.ndim != 2 or basis.shape[1] != sequence.frames:
        raise ConfigError(f"reference_tsmi: basis must be (rank, frames={sequence.frames}), got "
                          f"{tuple(basis.shape)}")
    dev = basis.device
    mask = torch.as_tensor(np.asarray(maps.mask, dtype=bool), device=dev)
    t1 = torch.as_tensor(np.asarray(maps.t1), device=dev, dtype=torch.float64)[mask]
    t2 = torch.as_tensor(np.asarray(maps.t2), device=dev, dtype=torch.float64)[mask]
    pd = torch.as_tensor(np.asarray(maps.pd), device=dev).to(torch.complex128)[mask]
    vc = basis.to(torch.complex128).conj().T                    # (frames, rank): X = s @ conj(V)^T
    x = torch.empty(t1.numel(), basis.shape[0], dtype=torch.complex128, device=dev)
    for s in range(0, t1.numel(), chunk):
        fp = simulate_fisp(sequence, t1[s:s + chunk], t2[s:s + chunk])       # (n, frames) real float64
        x[s:s + chunk] = (fp.to(torch.complex128) @ vc) * pd[s:s + chunk, None]
    out = torch.zeros(*mask.shape, basis.shape[0], dtype=torch.complex64, device=dev)
    out[mask] = x.to(torch.complex64)
    return out.movedim(-1, 0)


def noise_sigma(clean: torch.Tensor, snr_db: float) -> float:
    """Complex noise SD giving ``snr_db`` for noiseless k-space ``clean`` (module docstring); 0 for inf."""
    if math.isinf(snr_db) and snr_db > 0:
        return 0.0
    rms = float(clean.abs().square().mean().sqrt())
    return rms * 10.0 ** (-float(snr_db) / 20.0)


def raw_physics(basis, trajectory: MRFTrajectory) -> MRFPhysics:
    """The MRF operator without the sqrt-dcf weight (dcf = ones): raw k-space F V^T X / sqrt(HW)."""
    return MRFPhysics(basis, trajectory.points, None, img_size=(trajectory.matrix,) * 2)


def simulate_item(maps: QuantitativeMaps, sequence: FISPSequence, basis, trajectory: MRFTrajectory,
                  snr_db: float, generator: torch.Generator | None = None):
    """One slice's MRF acquisition: (raw k-space, reference TSMI).

    The k-space is the UNweighted NUFFT (orthonormal scale, as :class:`.physics.MRFPhysics` without its sqrt(w);
    ``MRFPhysics.weight`` turns it into that operator's measurement) of the reference TSMI, plus complex white
    Gaussian noise at ``snr_db`` (module docstring) drawn from ``generator`` (on ``basis``'s device; None: torch's
    global generator) as ``sigma / sqrt(2) (n_re + i n_im)``, n of shape (2, 1, frames, samples).

    :return: kspace complex64 (1, frames, samples) and tsmi complex64 (rank, H, W), on ``basis``'s device.
    """
    if maps.t1.shape != (trajectory.matrix,) * 2:
        raise ConfigError(f"simulate_item: maps are {maps.t1.shape[0]} x {maps.t1.shape[1]} but the trajectory is "
                          f"for {trajectory.matrix} x {trajectory.matrix}")
    if trajectory.frames != sequence.frames:
        raise ConfigError(f"simulate_item: trajectory has {trajectory.frames} frames, sequence {sequence.frames}")
    tsmi = reference_tsmi(maps, sequence, basis)
    clean = raw_physics(basis, trajectory).A(tsmi[None])[0]               # (1, frames, samples)
    sigma = noise_sigma(clean, snr_db)
    if sigma == 0.0:
        return clean, tsmi
    n = torch.randn((2, *clean.shape), generator=generator, device=clean.device, dtype=torch.float32)
    return clean + (sigma / math.sqrt(2.0)) * torch.complex(n[0], n[1]), tsmi


def item_generator(seed: int, device=None) -> torch.Generator:
    """torch generator of one item's noise, seeded with ``seed`` (an integer in [0, 2^64))."""
    return torch.Generator(device=device or "cpu").manual_seed(int(seed))

