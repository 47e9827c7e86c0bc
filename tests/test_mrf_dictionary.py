"""Fingerprint dictionary: grid, SVD subspace convention, matching (exact recovery, projection, coarse-to-fine),
the .npz cache, and the energy kept by a rank-5 subspace of the Jiang 200-TR train."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from padis_plugin.errors import ConfigError, DataError
from padis_plugin.mrf.dictionary import MRFDictionary, match, match_image, tissue_grid
from padis_plugin.mrf.epg import simulate_fisp
from padis_plugin.mrf.sequence import jiang_fisp

# A short train and ~400 atoms whose compressed atoms are all distinct (max off-diagonal correlation 1 - 5e-6).
SEQ = jiang_fisp(48)
GRID = tissue_grid((0.1, 4.0), (0.02, 2.0), target_atoms=400)


@pytest.fixture(scope="module")
def dico():
    return MRFDictionary.build(SEQ, rank=5, grid=GRID)


def _noiseless(d, seed=0):
    g = torch.Generator().manual_seed(seed)
    pd = torch.randn(len(d), dtype=torch.complex128, generator=g)
    return pd, (pd[:, None] * d.norms[:, None] * d.atoms.to(torch.complex128)).to(torch.complex64)


def test_tissue_grid():
    t1, t2 = tissue_grid()
    assert t1.dtype == np.float64 and abs(len(t1) - 10000) < 200
    assert (t2 < t1).all() and t1.min() == pytest.approx(0.02) and t1.max() == pytest.approx(5.0)
    assert t2.min() == pytest.approx(0.01) and t2.max() < 5.0
    u1 = np.unique(t1)
    assert np.allclose(np.diff(np.log(u1)), np.log(u1[1] / u1[0]))      # log-spaced axis
    a, b = tissue_grid((0.1, 1.0), (0.1, 1.0), n_t1=3, n_t2=3)
    assert len(a) == 3 and (b < a).all()                                 # strict T2 < T1 drops the diagonal
    with pytest.raises(ConfigError, match="both n_t1 and n_t2"):
        tissue_grid(n_t1=10)
    with pytest.raises(ConfigError, match="0 < lo < hi"):
        tissue_grid((1.0, 0.5))


def test_basis_orthonormal_and_atoms_unit(dico):
    v = dico.basis
    assert v.shape == (5, 48) and v.dtype == torch.complex64 and dico.atoms.dtype == torch.complex64
    assert torch.allclose(v @ v.conj().T, torch.eye(5, dtype=v.dtype), atol=1e-5)
    assert torch.allclose(dico.atoms.abs().square().sum(1), torch.ones(len(dico)), atol=1e-5)
    assert 0.99 < dico.energy_kept <= 1.0 and dico.sequence_key == SEQ.key()


def test_compression_convention_round_trip(dico):
    # X = conj(V) @ s compresses a fingerprint; x_t = sum_j V[j, t] X_j maps it back (the projection onto span V).
    f = simulate_fisp(SEQ, dico.t1, dico.t2).to(torch.complex128)          # (n, frames)
    v = dico.basis.to(torch.complex128)
    x = f @ v.conj().T                                                    # X per atom: (n, rank)
    assert torch.allclose(x, dico.norms[:, None] * dico.atoms.to(torch.complex128), atol=1e-5)
    back = x @ v                                                          # time series: x_t = sum_j V[j,t] X_j
    kept = back.abs().square().sum(1) / f.abs().square().sum(1)
    assert kept.mean().item() == pytest.approx(dico.energy_kept, abs=1e-5)
    resid = f - back                                                      # orthogonal to the subspace
    assert (resid @ v.conj().T).abs().max() < 1e-5


def test_noiseless_atoms_recovered_exactly(dico):
    pd, w = _noiseless(dico)
    res = match(dico, w)
    assert torch.equal(res.index, torch.arange(len(dico)))
    assert torch.equal(res.t1, dico.t1.float()) and torch.equal(res.t2, dico.t2.float())
    assert ((res.pd.to(torch.complex128) - pd).abs() / pd.abs()).max() < 1e-5
    assert torch.allclose(res.z, w, rtol=1e-5, atol=1e-6 * w.abs().max().item())


def test_z_is_the_best_orthogonal_projection(dico):
    g = torch.Generator().manual_seed(1)
    w = torch.randn(300, 5, dtype=torch.complex128, generator=g)
    res = match(dico, w)
    d = dico.atoms.to(torch.complex128)
    corr = (w @ d.conj().T).abs()                                         # |d_k^H w| for every atom (reference)
    assert torch.allclose(corr.gather(1, res.index[:, None])[:, 0], corr.max(1).values, rtol=1e-6)
    chosen = d[res.index]
    assert torch.allclose(res.z, (chosen.conj() * w).sum(1, keepdim=True) * chosen)
    # residual orthogonal to the atom (up to the complex64 rounding of the stored unit atoms)
    assert ((chosen.conj() * (w - res.z)).sum(1).abs() < 1e-6 * w.abs().max()).all()
    assert res.z.dtype == torch.complex128 and res.t1.dtype == torch.float64


def test_coarse_to_fine_equals_brute_force_on_noiseless_atoms(dico):
    _, w = _noiseless(dico, seed=2)
    fast = match(dico, w, coarse_to_fine=True, chunk=100)
    assert torch.equal(fast.index, match(dico, w).index)


def test_match_image_mask_and_shapes(dico):
    _, w = _noiseless(dico)
    x = w[:48].T.reshape(5, 6, 8)
    mask = torch.zeros(6, 8, dtype=torch.bool)
    mask[1:5, 2:7] = True
    res = match_image(dico, x, mask)
    assert res.z.shape == (5, 6, 8) and res.t1.shape == (6, 8)
    flat = match(dico, x.movedim(0, -1)[mask])
    assert torch.equal(res.index[mask], flat.index) and torch.equal(res.z.movedim(0, -1)[mask], flat.z)
    assert (res.index[~mask] == -1).all() and (res.t1[~mask] == 0).all() and (res.z[:, ~mask] == 0).all()
    with pytest.raises(DataError, match="rank=5"):
        match(dico, torch.zeros(3, 4, dtype=torch.complex64))
    with pytest.raises(DataError, match="mask must be bool"):
        match_image(dico, x, mask.float())


def test_cache_round_trip(tmp_path, monkeypatch):
    grid = tissue_grid((0.1, 2.0), (0.02, 1.0), target_atoms=60)
    seq = jiang_fisp(16)
    calls = []
    real_build = MRFDictionary.build.__func__
    monkeypatch.setattr(MRFDictionary, "build",
                        classmethod(lambda cls, *a, **k: calls.append(1) or real_build(cls, *a, **k)))
    first = MRFDictionary.cached(seq, 4, grid, tmp_path)
    again = MRFDictionary.cached(seq, 4, grid, tmp_path)
    assert len(calls) == 1 and [p.name for p in tmp_path.iterdir()] == [MRFDictionary.cache_path(
        seq, 4, grid, tmp_path).name]
    for name in ("t1", "t2", "norms", "basis", "atoms"):
        assert torch.equal(getattr(first, name), getattr(again, name))
    assert (again.rank, again.sequence_key, again.energy_kept) == (4, seq.key(), first.energy_kept)
    assert MRFDictionary.cache_path(seq, 5, grid, tmp_path) != MRFDictionary.cache_path(seq, 4, grid, tmp_path)
    # A corrupt cache file is rebuilt and replaced.
    MRFDictionary.cache_path(seq, 4, grid, tmp_path).write_bytes(b"not a zip")
    MRFDictionary.cached(seq, 4, grid, tmp_path)
    assert len(calls) == 2
    with pytest.raises(DataError, match="cannot read"):
        MRFDictionary.load(tmp_path / "missing.npz")


def test_energy_kept_jiang_200_rank_5():
    d = MRFDictionary.build(jiang_fisp(200), rank=5, grid=tissue_grid(target_atoms=1000))
    assert d.energy_kept > 0.99


def test_build_rejects_bad_rank():
    with pytest.raises(ConfigError, match="rank"):
        MRFDictionary.build(SEQ, rank=0, grid=GRID)
