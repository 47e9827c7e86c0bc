"""The (T1, T2) fingerprint dictionary and its temporal SVD subspace (McGivney et al., IEEE TMI 33:2311, 2014).

Subspace convention (the same as :mod:`.physics`): ``basis`` V is complex (rank, frames) with orthonormal rows, and
the time-series image at frame t is ``x_t = sum_j V[j, t] X_j``, i.e. ``x = V^T X``. A fingerprint s (frames,) is
compressed to ``X = conj(V) @ s``, and ``V^T conj(V)`` is the orthogonal projector onto span of the rows of V. The
rows of V are the first ``rank`` right singular vectors of the matrix of normalised fingerprints (one per row):
with ``D = U S Vh``, ``V = Vh[:rank]``.

Atoms: ``atoms[k] = conj(V) f_k / norms[k]`` where f_k is the simulated fingerprint (M0 = 1) and ``norms[k] =
||conj(V) f_k||`` is the norm of the *compressed* fingerprint (at most the full norm; the two agree to
``energy_kept``), so every atom has unit norm and a voxel of tissue k and proton density PD has TSMI
``X = PD * norms[k] * atoms[k]`` exactly. Matching (:mod:`.matching`) inverts this.
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path
from ..errors import ConfigError, DataError
from .epg import simulate_fisp
from .matching import MatchResult, match, match_image  # re-exported: the dictionary's inverse map
from .sequence import FISPSequence

FORMAT = "padis-mrf-dictionary-1"
_KEYS = ("format", "t1", "t2", "norms", "basis", "atoms", "sequence_key", "rank", "energy_kept")


def _grid_size(l1: float, l2: float, n1: int) -> int:
    return max(2, int(round((n1 - 1) * l2 / l1)) + 1)


def tissue_grid(t1_range=(0.02, 5.0), t2_range=(0.01, 4.0), n_t1: int | None = None, n_t2: int | None = None,
                target_atoms: int = 10000):
    """(t1, t2) float64 numpy arrays (n,) in seconds: log-spaced T1 and T2 axes, all pairs with T2 < T1.

    Without ``n_t1`` / ``n_t2`` both axes get the same density of points per unit log-time, the smallest density
    whose number of kept pairs is closest to ``target_atoms`` (default ranges: 10,000 -> 10,069 atoms on 127
    T1 x 138 T2 values, 4.4% apart).
    Atoms are ordered T1-major (T2 varies fastest).
    """
    (a1, b1), (a2, b2) = (tuple(map(float, r)) for r in (t1_range, t2_range))
    if not (0 < a1 < b1 and 0 < a2 < b2 and all(map(math.isfinite, (b1, b2)))):
        raise ConfigError(f"tissue_grid: ranges must be 0 < lo < hi (got T1 {t1_range}, T2 {t2_range})")
    l1, l2 = math.log(b1 / a1), math.log(b2 / a2)

    def axes(n1, n2):
        return np.geomspace(a1, b1, n1), np.geomspace(a2, b2, n2)

    def kept(n1, n2):
        x1, x2 = axes(n1, n2)
        return int((x2[None, :] < x1[:, None]).sum())

    if n_t1 is None or n_t2 is None:
        if n_t1 is not None or n_t2 is not None:
            raise ConfigError("tissue_grid: give both n_t1 and n_t2, or neither (then target_atoms decides)")
        if int(target_atoms) < 1:
            raise ConfigError(f"tissue_grid: target_atoms must be >= 1 (got {target_atoms})")
        best = None
        for n1 in range(2, 100000):
            count = kept(n1, _grid_size(l1, l2, n1))
            if best is None or abs(count - target_atoms) < abs(best[1] - target_atoms):
                best = (n1, count)
            if count > target_atoms:
                break
        n_t1, n_t2 = best[0], _grid_size(l1, l2, best[0])
    if int(n_t1) < 1 or int(n_t2) < 1:
        raise ConfigError(f"tissue_grid: n_t1 and n_t2 must be >= 1 (got {n_t1}, {n_t2})")
    x1, x2 = axes(int(n_t1), int(n_t2))
    g1, g2 = np.meshgrid(x1, x2, indexing="ij")
    keep = g2 < g1
    if not keep.any():
        raise ConfigError(f"tissue_grid: no pair with T2 < T1 in T1 {t1_range}, T2 {t2_range}")
    return g1[keep].astype(np.float64), g2[keep].astype(np.float64)


def default_cache_dir() -> Path:
    """``$PADIS_CACHE/mrf``, else ``~/.cache/padis_plugin/mrf`` (the package's cache root, as elsewhere)."""
    return Path(os.environ.get("PADIS_CACHE") or Path.home() / ".cache" / "padis_plugin") / "mrf"


@dataclass
class MRFDictionary:
    """Subspace-compressed fingerprint dictionary (conventions: module docstring); n atoms, ``rank`` channels.

    t1, t2, norms: float64 (n,) (seconds; norms of the compressed fingerprints). basis: complex64 (rank, frames).
    atoms: complex64 (n, rank), unit rows. energy_kept: fraction of the normalised fingerprints' energy in the
    subspace. sequence_key: :meth:`FISPSequence.key` of the simulated train.
    """

    t1: torch.Tensor
    t2: torch.Tensor
    norms: torch.Tensor
    basis: torch.Tensor
    atoms: torch.Tensor
    sequence_key: str
    rank: int
    energy_kept: float
    _search: dict = field(default_factory=dict, repr=False, compare=False)  # coarse-to-fine tables (matching)

    def __post_init__(self):
        n = self.t1.shape[0]
        if (self.t2.shape != (n,) or self.norms.shape != (n,) or self.atoms.shape != (n, self.rank)
                or self.basis.ndim != 2 or self.basis.shape[0] != self.rank):
            raise DataError(f"MRFDictionary: inconsistent shapes t1 {tuple(self.t1.shape)}, t2 "
                            f"{tuple(self.t2.shape)}, norms {tuple(self.norms.shape)}, atoms "
                            f"{tuple(self.atoms.shape)}, basis {tuple(self.basis.shape)} for rank {self.rank}")

    def __len__(self) -> int:
        return self.t1.shape[0]

    @property
    def frames(self) -> int:
        return self.basis.shape[1]

    def to(self, device) -> "MRFDictionary":
        """A copy with all tensors on ``device``."""
        mv = {k: getattr(self, k).to(device) for k in ("t1", "t2", "norms", "basis", "atoms")}
        return replace(self, **mv, _search={})

    @classmethod
    def build(cls, sequence: FISPSequence, rank: int = 5, grid=None, chunk: int = 1024) -> "MRFDictionary":
        """Simulate ``grid`` = (t1, t2) seconds (default :func:`tissue_grid`) with :func:`.epg.simulate_fisp`
        (``chunk`` atoms at a time), normalise, take the rank-``rank`` temporal SVD and compress."""
        if not isinstance(sequence, FISPSequence):
            raise ConfigError(f"MRFDictionary.build: sequence must be a FISPSequence (got {type(sequence).__name__})")
        t1, t2 = tissue_grid() if grid is None else grid
        t1 = torch.as_tensor(np.asarray(t1, dtype=np.float64))
        t2 = torch.as_tensor(np.asarray(t2, dtype=np.float64))
        if not 1 <= int(rank) <= sequence.frames:
            raise ConfigError(f"MRFDictionary.build: rank must be in 1..{sequence.frames} (got {rank})")
        rank = int(rank)
        fp = simulate_fisp(sequence, t1, t2, chunk=chunk)
        full = fp.norm(dim=1)
        if bool((full == 0).any()):
            raise DataError("MRFDictionary.build: some fingerprints are all zero (no RF in the sequence?)")
        fp = fp / full[:, None]
        # Right singular vectors of fp = eigenvectors of the (frames x frames) Gram matrix: cheap for many atoms.
        evals, evecs = torch.linalg.eigh(fp.mH @ fp)
        top = evecs[:, -rank:].flip(1)                       # (frames, rank), decreasing singular value
        basis = top.mH.to(torch.complex128)                  # V = Vh[:rank]
        pivot = basis.abs().argmax(dim=1, keepdim=True)      # sign convention: largest entry of each row > 0
        basis = basis * (basis.gather(1, pivot).abs() / basis.gather(1, pivot))
        if fp.is_complex():                                  # (n, rank): X = conj(V) @ s per fingerprint
            compressed = fp @ basis.conj().T
        else:                                                # real fingerprints: no (n, frames) complex copy
            compressed = torch.complex(fp @ basis.real.T, -(fp @ basis.imag.T))
        cnorm = compressed.norm(dim=1)
        energy = float(evals[-rank:].sum() / evals.sum())
        return cls(t1, t2, full * cnorm, basis.to(torch.complex64), (compressed / cnorm[:, None]).to(torch.complex64),
                   sequence.key(), rank, energy)

    def save(self, path) -> None:
        """Write an ``.npz`` (no pickled objects) atomically."""
        arrays = {"format": np.array(FORMAT), "t1": self.t1.cpu().numpy(), "t2": self.t2.cpu().numpy(),
                  "norms": self.norms.cpu().numpy(), "basis": self.basis.cpu().numpy(),
                  "atoms": self.atoms.cpu().numpy(), "sequence_key": np.array(self.sequence_key),
                  "rank": np.array(self.rank), "energy_kept": np.array(self.energy_kept)}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path) -> "MRFDictionary":
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = [k for k in _KEYS if k not in z.files]
                if missing:
                    raise DataError(f"{path}: not an MRF dictionary (missing {missing})")
                d = {k: z[k] for k in _KEYS}
        except (OSError, ValueError) as e:
            if isinstance(e, DataError):
                raise
            raise DataError(f"{path}: cannot read the MRF dictionary ({e})") from None
        if str(d["format"]) != FORMAT:
            raise DataError(f"{path}: unknown dictionary format {str(d['format'])!r} (expected {FORMAT})")
        return cls(torch.from_numpy(d["t1"]), torch.from_numpy(d["t2"]), torch.from_numpy(d["norms"]),
                   torch.from_numpy(d["basis"]), torch.from_numpy(d["atoms"]), str(d["sequence_key"]),
                   int(d["rank"]), float(d["energy_kept"]))

    @classmethod
    def cache_path(cls, sequence: FISPSequence, rank: int = 5, grid=None, cache_dir=None) -> Path:
        """Cache file name: a hash of the sequence key, the rank and the grid's exact values."""
        t1, t2 = tissue_grid() if grid is None else grid
        h = hashlib.sha256(f"{FORMAT}|{sequence.key()}|{int(rank)}|".encode())
        h.update(np.ascontiguousarray(t1, dtype=np.float64).tobytes() + b"|")
        h.update(np.ascontiguousarray(t2, dtype=np.float64).tobytes())
        return Path(cache_dir or default_cache_dir()) / f"fisp_{h.hexdigest()[:20]}.npz"

    @classmethod
    def cached(cls, sequence: FISPSequence, rank: int = 5, grid=None, cache_dir=None) -> "MRFDictionary":
        """:meth:`load` the cached dictionary, or :meth:`build` and save it (atomically) if absent or unreadable."""
        path = cls.cache_path(sequence, rank, grid, cache_dir)
        if path.exists():
            try:
                d = cls.load(path)
                if d.sequence_key == sequence.key() and d.rank == int(rank):
                    return d
            except DataError:
                pass  # a corrupt or foreign file: rebuild and replace it
        d = cls.build(sequence, rank, grid)
        d.save(path)
        return d

__all__ = ["MRFDictionary", "MatchResult", "default_cache_dir", "match", "match_image", "tissue_grid"]
