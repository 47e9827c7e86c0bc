"""MRF acquisition: spiral trajectory and its density compensation, the finufft NUFFT pair, and the subspace
operator MRFPhysics (exactness against a slow non-uniform DFT, adjointness, CG normal equations, deepinv solvers)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from padis_plugin.errors import ConfigError, DataError
from padis_plugin.mrf.nufft import nufft_adjoint, nufft_forward
from padis_plugin.mrf.physics import MRFPhysics
from padis_plugin.mrf.spiral import GOLDEN_ANGLE, build_trajectory, spiral_dcf, spiral_interleaf


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _crandn(*shape, dtype=torch.complex128, seed=0):
    return torch.randn(shape, dtype=dtype, generator=_gen(seed))


def _nudft_matrix(points, h, w):
    """Exact non-uniform DFT (M, H*W) with pixel (h, w) at (h - H//2, w - W//2), exp(-i k.r)."""
    k = torch.as_tensor(np.asarray(points), dtype=torch.float64).reshape(-1, 2)
    rh = torch.arange(h, dtype=torch.float64) - h // 2
    rw = torch.arange(w, dtype=torch.float64) - w // 2
    phase = k[:, 0, None, None] * rh[None, :, None] + k[:, 1, None, None] * rw[None, None, :]
    return torch.exp(-1j * phase).reshape(k.shape[0], h * w)


def _rel(a, b):
    return float((a - b).abs().norm() / b.abs().norm())


def _smooth_image(n):
    yy, xx = torch.meshgrid(torch.arange(n) - n // 2, torch.arange(n) - n // 2, indexing="ij")
    g = torch.exp(-(xx.double() ** 2 + yy.double() ** 2) / (2 * (n / 6) ** 2))
    return (g * torch.exp(1j * 0.3 * xx.double() / n)).to(torch.complex128)


# ---------------------------------------------------------------- spiral

def test_trajectory_rotations_range_and_dcf_total():
    tr = build_trajectory(matrix=32, frames=10, samples=64, interleaves=8)
    base = spiral_interleaf(32, 64, 8)
    assert tr.points.shape == (10, 64, 2) and tr.points.dtype == np.float32 and tr.dcf.shape == (64,)
    assert np.all(np.abs(tr.points) < math.pi) and np.all(np.hypot(tr.points[..., 0], tr.points[..., 1]) < math.pi)
    for t in (0, 3, 9):  # frame t = base rotated by (t mod 8) * 2 pi / 8
        a = (t % 8) * 2 * math.pi / 8
        rot = np.stack([math.cos(a) * base[:, 0] - math.sin(a) * base[:, 1],
                        math.sin(a) * base[:, 0] + math.cos(a) * base[:, 1]], -1)
        np.testing.assert_allclose(tr.points[t], rot, atol=1e-6)
    np.testing.assert_allclose(tr.points[8], tr.points[0], atol=1e-6)  # cycles
    # dcf of the full set of rotations tiles the disc of radius r(t = 1 - 1/(2 samples)), in Nyquist cells
    r_edge = math.pi * (1 - 0.5 / 64) ** 2
    assert math.isclose(8 * tr.dcf.sum(), math.pi * r_edge ** 2 / (2 * math.pi / 32) ** 2, rel_tol=1e-5)
    golden = build_trajectory(matrix=32, frames=3, samples=64, interleaves=8, order="golden")
    np.testing.assert_allclose(golden.angles, [0.0, GOLDEN_ANGLE, 2 * GOLDEN_ANGLE])


def test_spiral_nyquist_at_centre_undersampled_at_edge():
    """The full set of rotations leaves no hole wider than Nyquist (2 pi / matrix) inside a quarter of kmax
    (alpha = 2) and holes wider than Nyquist near the edge: variable density."""
    matrix, n = 32, 8
    pts = build_trajectory(matrix=matrix, frames=n, samples=400, interleaves=n).points.reshape(-1, 2)
    tree, nyq = cKDTree(pts), 2 * math.pi / matrix
    rng = np.random.default_rng(0)
    ang = rng.uniform(0, 2 * math.pi, 4000)

    def worst_hole(r_lo, r_hi):  # largest distance from a point of the annulus to its nearest sample
        r = np.sqrt(rng.uniform(r_lo ** 2, r_hi ** 2, ang.size))
        return tree.query(np.stack([r * np.cos(ang), r * np.sin(ang)], -1))[0].max()

    assert worst_hole(0.0, math.pi / 4) <= 0.5 * nyq * 1.05  # hole radius <= half the Nyquist gap
    assert worst_hole(0.8 * math.pi, 0.95 * math.pi) > 0.5 * nyq * 1.3
    w = spiral_dcf(matrix, 400, n)
    assert w[10] < w[200] < w[390]  # density falls with |k|: each sample stands for more area


@pytest.mark.parametrize("kwargs", [dict(matrix=1), dict(samples=1), dict(interleaves=0), dict(density_power=0.5),
                                    dict(frames=0), dict(order="random")])
def test_trajectory_bad_config(kwargs):
    with pytest.raises(ConfigError):
        build_trajectory(**{**dict(matrix=16, frames=4, samples=16, interleaves=4), **kwargs})


# ---------------------------------------------------------------- nufft

@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_nufft_matches_exact_nudft(dtype):
    k = (torch.rand(60, 2, generator=_gen(1), dtype=torch.float64) * 2 - 1) * math.pi
    x = _crandn(2, 3, 16, 16, dtype=dtype)
    e = _nudft_matrix(k, 16, 16)
    y = nufft_forward(x, k)
    assert y.shape == (2, 3, 60) and y.dtype == dtype
    assert _rel(y.to(torch.complex128), x.to(torch.complex128).reshape(2, 3, -1) @ e.T) < 1e-5
    v = _crandn(4, 60, dtype=dtype, seed=2)
    a = nufft_adjoint(v, k, (16, 16))
    assert a.shape == (4, 16, 16) and _rel(a.to(torch.complex128), (v.to(torch.complex128) @ e.conj()).reshape(4, 16, 16)) < 1e-5


def test_nufft_adjointness_and_gradcheck():
    k = (torch.rand(40, 2, generator=_gen(3), dtype=torch.float64) * 2 - 1) * math.pi
    x, v = _crandn(3, 12, 10), _crandn(3, 40, seed=1)
    lhs = (v.conj() * nufft_forward(x, k)).sum()
    rhs = (nufft_adjoint(v, k, (12, 10)).conj() * x).sum()
    assert abs(lhs - rhs) / abs(lhs) < 1e-5
    xs = _crandn(4, 5, seed=4).requires_grad_()
    vs = _crandn(7, seed=5).requires_grad_()
    ks = k[:7]
    assert torch.autograd.gradcheck(lambda t: nufft_forward(t, ks, eps=1e-12), (xs,))
    assert torch.autograd.gradcheck(lambda t: nufft_adjoint(t, ks, (4, 5), eps=1e-12), (vs,))


def test_nufft_bad_inputs():
    k = torch.zeros(5, 2)
    with pytest.raises(DataError, match="complex"):
        nufft_forward(torch.zeros(4, 4), k)
    with pytest.raises(DataError, match=r"\(M, 2\)"):
        nufft_forward(torch.zeros(4, 4, dtype=torch.complex64), torch.zeros(5, 3))
    with pytest.raises(DataError, match="samples"):
        nufft_adjoint(torch.zeros(6, dtype=torch.complex64), k, (4, 4))


# ---------------------------------------------------------------- physics

def _physics(n=16, frames=12, samples=24, k=3, coils=None, dtype=torch.complex128, seed=0):
    tr = build_trajectory(matrix=n, frames=frames, samples=samples, interleaves=frames)
    basis = _crandn(k, frames, dtype=torch.complex64, seed=seed)
    maps = None if coils is None else _crandn(coils, n, n, dtype=torch.complex64, seed=seed + 1)
    return MRFPhysics.from_trajectory(basis, tr, coil_maps=maps), tr


@pytest.mark.parametrize("coils", [None, 3])
def test_physics_adjoint_and_slow_reference(coils):
    phys, tr = _physics(coils=coils)
    x = _crandn(2, 3, 16, 16, seed=7)
    y = phys.A(x)
    assert y.shape == (2, coils or 1, 12, 24) and y.dtype == torch.complex128
    v = _crandn(*y.shape, seed=8)
    lhs, rhs = (v.conj() * y).sum(), (phys.A_adjoint(v).conj() * x).sum()
    assert abs(lhs - rhs) / abs(lhs) < 1e-5
    x32 = x.to(torch.complex64)  # single precision: adjoint to float32 round-off
    v32 = v.to(torch.complex64)
    l32, r32 = (v32.conj() * phys.A(x32)).sum(), (phys.A_adjoint(v32).conj() * x32).sum()
    assert abs(l32 - r32) / abs(l32) < 1e-5
    # slow reference: per frame, the time-series image sum_j V[j, t] X_j, coil-weighted, exact NUDFT * sqrt(dcf)
    basis = phys.basis.to(torch.complex128)
    maps = torch.ones(1, 16, 16, dtype=torch.complex128) if coils is None else phys.coil_maps.to(torch.complex128)
    ref = torch.zeros_like(y)
    for t in range(12):
        img = torch.einsum("j,bjhw->bhw", basis[:, t], x)
        e = _nudft_matrix(tr.points[t], 16, 16)
        ref[:, :, t] = (maps[None] * img[:, None]).reshape(2, maps.shape[0], -1) @ e.T
    ref = ref * torch.as_tensor(tr.dcf, dtype=torch.float64).sqrt() / 16
    assert _rel(y, ref) < 1e-5


def test_physics_autograd_gradient_is_adjoint_of_residual():
    phys, _ = _physics()
    x, y = _crandn(1, 3, 16, 16, seed=1).requires_grad_(), _crandn(1, 1, 12, 24, seed=2)
    (phys.A(x) - y).abs().pow(2).sum().backward()
    assert _rel(x.grad, 2 * phys.A_adjoint(phys.A(x.detach()) - y)) < 1e-8


def _dense_normal(phys, rho):
    n = phys.k * phys.shape[0] * phys.shape[1]
    eye = torch.eye(n, dtype=torch.complex128).reshape(n, phys.k, *phys.shape)
    cols = phys.A_adjoint(phys.A(eye)).reshape(n, n).T
    return cols + rho * torch.eye(n, dtype=torch.complex128)


def test_normal_solve_cg_matches_dense_solve():
    phys, _ = _physics(n=8, frames=8, samples=16, k=2)
    rhs, rho = _crandn(2, 2, 8, 8, seed=3), 0.05
    dense = torch.linalg.solve(_dense_normal(phys, rho), rhs.reshape(2, -1).T).T.reshape(rhs.shape)
    x = phys.normal_solve(rhs, rho, iters=500, tol=1e-12)
    assert _rel(phys.A_adjoint(phys.A(x)) + rho * x, rhs) < 1e-8  # normal equations
    assert _rel(x, dense) < 1e-6
    assert _rel(phys.normal_solve(rhs, rho, x0=dense, iters=5), dense) < 1e-8  # warm start from the answer
    five = phys.normal_solve(rhs, torch.tensor([rho, rho]), iters=5)  # per-sample rho, the published 5 steps
    assert _rel(five, dense) < _rel(torch.zeros_like(dense), dense)


def test_deepinv_prox_l2_and_dagger_on_mrf_physics():
    phys, _ = _physics(n=8, frames=16, samples=48, k=2)
    x = _crandn(1, 2, 8, 8, seed=4)
    y = phys.A(x)
    assert phys.adjointness_test(u=x) < 1e-6
    gamma, z = 2.0, _crandn(1, 2, 8, 8, seed=5)
    prox = phys.prox_l2(z, y, gamma, max_iter=100, tol=1e-7)
    ref = phys.normal_solve(phys.A_adjoint(y) + z / gamma, 1 / gamma, iters=400, tol=1e-12)
    assert _rel(prox, ref) < 1e-5
    # the grid's corner frequencies (|k| > pi) are never sampled, so A has a near null space: A_dagger fits the data
    # (its CG is slow on that conditioning: 50 iterations give ~1e-3) rather than recovering x
    assert _rel(phys.A(phys.A_dagger(y, max_iter=50)), y) < 2e-2


def test_dcf_makes_normal_operator_close_to_identity():
    """Every rotation once with V = 1: A^H A = sum_r F_r^H W F_r, the identity low-passed to the disc |k| < pi;
    on a smooth image the centre agrees to 2 % (measured ~0.3 %); without the dcf it is far from the image."""
    n = 32
    tr = build_trajectory(matrix=n, frames=16, samples=256, interleaves=16)
    x = _smooth_image(n)[None, None]
    ones = torch.ones(1, 16, dtype=torch.complex64)
    out = MRFPhysics.from_trajectory(ones, tr).A_adjoint_A(x)
    c = slice(n // 2 - 6, n // 2 + 6)
    assert _rel(out[..., c, c], x[..., c, c]) < 0.02
    plain = MRFPhysics(ones, tr.points, None, img_size=(n, n)).A_adjoint_A(x)
    assert _rel(plain[..., c, c], x[..., c, c]) > 0.5


def test_measure_noise_is_white_before_the_weighting():
    phys, _ = _physics(frames=16, samples=64)
    x = _crandn(1, 3, 16, 16, dtype=torch.complex64, seed=1)
    y1, y2 = phys.measure(x, 0.1, _gen(9)), phys.measure(x, 0.1, _gen(9))
    assert torch.equal(y1, y2) and torch.equal(phys.measure(x), phys.A(x))
    raw_noise = (y1 - phys.A(x)) / phys.sqrt_dcf
    assert abs(raw_noise.real.std().item() - 0.1) < 0.01 and abs(raw_noise.imag.std().item() - 0.1) < 0.01
    assert torch.allclose(phys.weight(raw_noise), y1 - phys.A(x), atol=1e-6)


def test_physics_bad_inputs():
    phys, tr = _physics()
    with pytest.raises(DataError, match="complex"):
        phys.A(torch.zeros(1, 3, 16, 16))
    with pytest.raises(DataError, match="x must be"):
        phys.A(torch.zeros(1, 2, 16, 16, dtype=torch.complex64))
    with pytest.raises(DataError, match="y must be"):
        phys.A_adjoint(torch.zeros(1, 1, 12, 23, dtype=torch.complex64))
    with pytest.raises(DataError, match="frames"):
        MRFPhysics(torch.ones(3, 11, dtype=torch.complex64), tr.points, tr.dcf, img_size=(16, 16))
    with pytest.raises(DataError, match="dcf"):
        MRFPhysics(torch.ones(3, 12, dtype=torch.complex64), tr.points, tr.dcf[:5], img_size=(16, 16))
    with pytest.raises(DataError, match="rho"):
        phys.normal_solve(torch.zeros(1, 3, 16, 16, dtype=torch.complex64), -1.0)
