"""Dictionary matching (Ma et al., Nature 495:187, 2013) in the SVD subspace: the Bloch projection of MRF-DiPh.

Per voxel with compressed time series w (rank,), pick the unit atom d_k maximising |d_k^H w|; then
z = (d_k^H w) d_k is the orthogonal projection of w onto the union of the complex lines spanned by the atoms,
T1 / T2 are atom k's, and PD = (d_k^H w) / norms[k] (complex): a voxel of tissue k has w = PD * norms[k] * d_k
(:mod:`.dictionary` conventions), so this PD is exact for noiseless data and the least-squares PD otherwise.

Brute force (the default) scores every atom exactly with one real matrix product per block of voxels x atoms
(:func:`_pair_features`) and a two-level arg-max; 16,384 voxels x 10,069 atoms take about 1 s on one CPU thread
(94,845 atoms: about 6 s).

Coarse-to-fine (optional, approximate): the (T1, T2) lattice is cut into cells of ``block`` x ``block`` lattice
steps (default 3); each cell's member nearest its centre is a coarse atom. A voxel is scored against the coarse
atoms; then against all atoms of the 3 x 3 cells around each of its ``top`` (2) best coarse atoms; then, up to
``steps`` (4) times, against the 3 x 3 cells around the best atom found so far (a local ascent along the
correlation ridge). It is **off by default at every size**: on noisy atoms of the Jiang 200-TR rank-5 dictionary
it picks the brute-force atom for only 93-96% of voxels (mean T1 / T2 difference 0.3% / 1.3% at 95k atoms),
because distant (T1, T2) pairs have near-equal correlations in the subspace, and it saves at most 2x
(95k atoms; it is slower than brute force at 10k atoms).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DataError

_BLOCK = 1 << 20                # voxel x atom scores per block: 4 MB in float32 (stays in cache)
_GROUP = 32                     # atoms per group of the two-level arg-max


@dataclass
class MatchResult:
    """z: (..., rank) complex projected TSMI; t1, t2: (...) real, seconds; pd: (...) complex; index: (...) int64
    (-1 outside a mask)."""

    z: torch.Tensor
    t1: torch.Tensor
    t2: torch.Tensor
    pd: torch.Tensor
    index: torch.Tensor


def _pair_features(d: torch.Tensor):
    """(n, r^2) real features with |d^H w|^2 = phi(d) . psi(w) (psi: :func:`_voxel_features`).

    |d^H w|^2 = sum_ij conj(d_i) d_j w_i conj(w_j)
              = sum_i |d_i|^2 |w_i|^2 + 2 sum_{i<j} Re(conj(d_i) d_j w_i conj(w_j)): a linear form in the pairs, so one real matrix product (K = r^2, or r (r + 1) / 2 for real atoms) scores all
    voxels against all atoms, with no complex arithmetic and no extra passes over the scores. Scores are in
    ``w``'s real precision: float32 for complex64 input, so near-ties within ~1e-6 (relative) may go either way.
    """
    i, j = torch.triu_indices(d.shape[1], d.shape[1], 1, device=d.device)
    p = d[:, i].conj() * d[:, j]
    return torch.cat([d.abs().square(), p.real, p.imag], 1)


def _voxel_features(w: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    i, j = torch.triu_indices(w.shape[1], w.shape[1], 1, device=w.device)
    q = w[:, i] * w[:, j].conj()
    return torch.cat([w.abs().square(), 2 * q.real, -2 * q.imag], 1)[:, keep]


def _best(psi: torch.Tensor, phi_t: torch.Tensor, k: int = 1) -> torch.Tensor:
    """(m, k) row indices of phi_t.T (atoms, padded to a multiple of _GROUP) with the largest scores.

    k = 1: two-level arg-max (max over each group of _GROUP atoms, values only, which is cheap; arg-max over the
    groups; then the arg-max inside the winning group, recomputed). k > 1: running top-k (small atom sets only).
    """
    m, n = psi.shape[0], phi_t.shape[1]
    step = max(_GROUP, (_BLOCK // max(1, m)) // _GROUP * _GROUP)
    vals = idx = None
    for a0 in range(0, n, step):
        score = psi @ phi_t[:, a0:a0 + step]
        if k == 1:
            v, i = score.view(m, -1, _GROUP).amax(2).max(1, keepdim=True)
            i = i * _GROUP + a0
        else:
            v, i = score.topk(min(k, score.shape[1]), dim=1)
            i = i + a0
        if vals is None:
            vals, idx = v, i
        elif k == 1:
            better = v > vals
            vals, idx = torch.where(better, v, vals), torch.where(better, i, idx)
        else:
            vals, j = torch.cat([vals, v], 1).topk(k, dim=1)
            idx = torch.cat([idx, i], 1).gather(1, j)
    if k == 1:
        cand = idx + torch.arange(_GROUP, device=idx.device)                        # (m, _GROUP) the best group
        idx = cand.gather(1, torch.einsum("mgk,mk->mg", phi_t.T[cand], psi).argmax(1, keepdim=True))
    return idx


def _search_tables(dictionary, block: int, device):
    """Coarse-to-fine tables on the (T1, T2) lattice cut into ``block`` x ``block`` cells: per cell its coarse atom
    (the member nearest the cell centre) (nb,), the atoms of the 3 x 3 cells around it padded by repeats (nb, M),
    and each atom's cell (n,)."""
    n, s = len(dictionary), int(block)
    key = (s, str(device))
    if key not in dictionary._search:
        i1 = np.unique(dictionary.t1.cpu().numpy(), return_inverse=True)[1].reshape(-1)
        i2 = np.unique(dictionary.t2.cpu().numpy(), return_inverse=True)[1].reshape(-1)
        b1, b2 = i1 // s, i2 // s
        dist = (i1 - b1 * s - (s - 1) / 2) ** 2 + (i2 - b2 * s - (s - 1) / 2) ** 2
        members = {}
        for a in np.lexsort((np.arange(n), dist)):           # nearest the centre first within each cell
            members.setdefault((int(b1[a]), int(b2[a])), []).append(int(a))
        cells = {c: r for r, c in enumerate(members)}
        hood = [[a for d1 in (-1, 0, 1) for d2 in (-1, 0, 1) for a in members.get((c[0] + d1, c[1] + d2), ())]
                for c in members]
        width = max(map(len, hood))
        table = torch.tensor([h + h[:1] * (width - len(h)) for h in hood], dtype=torch.long, device=device)
        coarse = torch.tensor([m[0] for m in members.values()], dtype=torch.long, device=device)
        cell = torch.tensor([cells[(int(x), int(y))] for x, y in zip(b1, b2)], dtype=torch.long, device=device)
        dictionary._search[key] = (coarse, table, cell)
    return dictionary._search[key]


def _padded_t(phi: torch.Tensor) -> torch.Tensor:
    """(K, n') features of the rows of phi repeated cyclically up to a multiple of _GROUP (index % n undoes it)."""
    n = phi.shape[0]
    return phi[torch.arange(-(-n // _GROUP) * _GROUP, device=phi.device) % n].T.contiguous()


def _coarse_to_fine(psi, phi, tables, top: int, steps: int) -> torch.Tensor:
    coarse, table, cell = tables
    phi_c = _padded_t(phi[coarse])
    cells = _best(psi, phi_c, min(top, coarse.numel())) % coarse.numel()      # (m, top) best coarse cells
    best = None
    for _ in range(steps):
        cand = table[cells].reshape(psi.shape[0], -1)                           # (m, top * M) atom indices
        new = cand.gather(1, torch.einsum("mck,mk->mc", phi[cand], psi).argmax(1, keepdim=True))
        if best is not None and torch.equal(new, best):
            break
        best, cells = new, cell[new]                                             # re-centre on the best atom
    return best[:, 0]


def match(dictionary, w, *, chunk: int = 512, coarse_to_fine: bool = False, top: int = 2, block: int = 3,
          steps: int = 4) -> MatchResult:
    """Match compressed time series ``w`` (..., rank) complex against ``dictionary`` (an :class:`MRFDictionary`).

    ``chunk`` voxels are processed at a time (memory is bounded by it and a fixed voxel x atom block).
    ``coarse_to_fine``: the approximate search of the module docstring, tuned by ``top``, ``block`` (cell size in
    lattice steps) and ``steps`` (local searches); off by default (not exact enough, see there).
    Outputs live on ``w``'s device in ``w``'s precision.
    """
    w = torch.as_tensor(w)
    if w.ndim < 1 or w.shape[-1] != dictionary.rank:
        raise DataError(f"match: w must be (..., rank={dictionary.rank}), got shape {tuple(w.shape)}")
    if not w.is_complex():
        w = w.to(torch.complex128 if w.dtype == torch.float64 else torch.complex64)
    dev, lead = w.device, w.shape[:-1]
    real = w.real.dtype
    w = w.reshape(-1, dictionary.rank)
    atoms = dictionary.atoms.to(dev, w.dtype)
    phi = _pair_features(atoms)
    keep = phi.abs().amax(0) > 0                   # real atoms: the Im columns are all zero, K = r (r + 1) / 2
    phi = phi[:, keep]
    n = len(atoms)
    tables = _search_tables(dictionary, block, dev) if coarse_to_fine else None
    phi_t = None if coarse_to_fine else _padded_t(phi)
    index = torch.empty(w.shape[0], dtype=torch.long, device=dev)
    for v0 in range(0, w.shape[0], chunk):
        psi = _voxel_features(w[v0:v0 + chunk], keep)
        if coarse_to_fine:
            index[v0:v0 + chunk] = _coarse_to_fine(psi, phi, tables, int(top), max(1, int(steps)))
        else:
            index[v0:v0 + chunk] = _best(psi, phi_t)[:, 0] % n
    d = atoms[index]
    inner = (d.conj() * w).sum(-1)
    return MatchResult(z=(inner[:, None] * d).reshape(*lead, dictionary.rank),
                       t1=dictionary.t1.to(dev, real)[index].reshape(lead),
                       t2=dictionary.t2.to(dev, real)[index].reshape(lead),
                       pd=(inner / dictionary.norms.to(dev, real)[index]).reshape(lead),
                       index=index.reshape(lead))


def match_image(dictionary, x, mask=None, **kwargs) -> MatchResult:
    """Match a TSMI ``x`` (rank, H, W) complex voxel by voxel (only inside ``mask`` (H, W) bool, if given).

    Returns z (rank, H, W) and maps t1, t2, pd, index (H, W); outside the mask all are 0 (index -1).
    ``kwargs`` go to :func:`match`.
    """
    x = torch.as_tensor(x)
    if x.ndim != 3 or x.shape[0] != dictionary.rank:
        raise DataError(f"match_image: x must be (rank={dictionary.rank}, H, W), got shape {tuple(x.shape)}")
    hw = x.shape[1:]
    if mask is None:
        mask = torch.ones(hw, dtype=torch.bool, device=x.device)
    mask = torch.as_tensor(mask, device=x.device)
    if mask.shape != hw or mask.dtype != torch.bool:
        raise DataError(f"match_image: mask must be bool {tuple(hw)}, got {mask.dtype} {tuple(mask.shape)}")
    res = match(dictionary, x.movedim(0, -1)[mask], **kwargs)
    z = res.z.new_zeros(*hw, dictionary.rank)
    z[mask] = res.z
    maps = {}
    for name, fill in (("t1", 0), ("t2", 0), ("pd", 0), ("index", -1)):
        v = getattr(res, name)
        maps[name] = torch.full(hw, fill, dtype=v.dtype, device=v.device)
        maps[name][mask] = v
    return MatchResult(z=z.movedim(-1, 0), **maps)
