import numpy as np
import pytest
import torch

from padis_plugin.errors import DataError
from padis_plugin.acquisition.masks import cartesian_mask
from padis_plugin.acquisition import batch_problems, slice_problem
from padis_plugin.acquisition.physics import build_physics


def test_slice_problem_shapes_measurement_and_adjoint(tiny_slice):
    mask = cartesian_mask(64, 4, acs_lines=8, seed=0)
    y, physics, x_ref = slice_problem(tiny_slice, mask)
    c = tiny_slice.kspace.shape[0]
    assert y.shape == (1, 2, c, 64, 64) and x_ref.shape == (1, 2, 64, 64) and y.dtype == torch.float32
    # y is the masked stored k-space, and A of the true image reproduces it
    assert torch.allclose(y[0, 0], torch.from_numpy(tiny_slice.kspace.real) * mask, atol=1e-6)
    assert ((physics.A(x_ref) - y).norm() / y.norm()) < 1e-5
    g = torch.Generator().manual_seed(0)
    x, v = torch.randn(x_ref.shape, generator=g), torch.randn(y.shape, generator=g)
    lhs, rhs = (physics.A(x) * v).sum(), (x * physics.A_adjoint(v)).sum()
    assert abs(lhs - rhs) / (physics.A(x).norm() * v.norm()) < 1e-5


def test_acquired_mask_and_mismatch(tiny_slice):
    from dataclasses import replace

    mask = cartesian_mask(64, 2, acs_lines=8, seed=1).numpy()
    acquired = replace(tiny_slice, undersampled=True, acquired_mask=mask)
    y, physics, _ = slice_problem(acquired, None)
    assert torch.equal(physics.mask[0, 0], torch.from_numpy(mask))
    with pytest.raises(DataError, match=tiny_slice.id):
        slice_problem(tiny_slice, cartesian_mask(32, 4, acs_lines=8))
    with pytest.raises(DataError):
        slice_problem(tiny_slice, None)


def test_batch_matches_single(slice_factory):
    slices = [slice_factory(64, 4, seed=0), slice_factory(64, 4, seed=1)]
    masks = [cartesian_mask(64, 4, 8, seed=s) for s in (0, 1)]
    y, physics, x_ref = batch_problems(slices, masks)
    assert y.shape == (2, 2, 4, 64, 64) and x_ref.shape == (2, 2, 64, 64)
    y1, physics1, _ = slice_problem(slices[1], masks[1])
    assert torch.allclose(y[1:], y1) and torch.allclose(physics.A_adjoint(y)[1:], physics1.A_adjoint(y1), atol=1e-6)


def test_build_physics_mask_layouts(tiny_slice):
    maps = torch.from_numpy(tiny_slice.coil_maps)
    mask = cartesian_mask(64, 4, 8)
    deepinv_layout = mask[None, None].expand(1, 2, 64, 64)  # deepinv's (B, 2, H, W) mask convention
    for m in (mask, mask[None], mask[None, None], deepinv_layout):
        assert build_physics(maps, m).mask.shape == (1, 2, 64, 64)
    with pytest.raises(DataError):
        build_physics(maps.real, mask)
    bad = deepinv_layout.clone()
    bad[0, 1, :, 0] = 1 - bad[0, 1, :, 0]
    with pytest.raises(DataError, match="real and imaginary"):
        build_physics(maps, bad)


def test_cartesian_mask_generator_drives_deepinv_physics(tiny_slice):
    """The paper's masks as a deepinv physics generator: seeded steps reproduce, physics.update takes them."""
    from padis_plugin.acquisition.masks import CartesianMaskGenerator

    gen = CartesianMaskGenerator((2, 64, 64), acceleration=4)
    a, b = gen.step(batch_size=3, seed=1)["mask"], gen.step(batch_size=3, seed=1)["mask"]
    assert a.shape == (3, 2, 64, 64) and torch.equal(a, b) and not torch.equal(a[0], a[1])  # deepinv: C of img_size
    assert int(a[0, 0, 0].sum()) == 16 and gen.acs_lines == 4  # floor(64/4) lines; 24/384 of 64 rounds to 4
    maps = torch.from_numpy(tiny_slice.coil_maps)
    physics = build_physics(maps, cartesian_mask(64, 8, 4))
    physics.update(**gen.step(batch_size=1, seed=2))
    x = torch.randn(1, 2, 64, 64)
    sampled = physics.A(x).abs().sum(dim=(0, 1, 2, 3)) > 0
    assert int(sampled.sum()) == 16


def test_all_zero_coil_maps_are_refused_with_a_reason():
    """Maps that are zero almost everywhere (ESPIRiT from too narrow an ACS block) leave every solver with no
    signal: one DataError saying so, not a 10 dB reconstruction."""
    import pytest

    from padis_plugin.acquisition.physics import build_physics
    from padis_plugin.errors import DataError

    maps = torch.zeros(4, 16, 16, dtype=torch.complex64)
    maps[:, :1, :1] = 0.5                      # 1 pixel of 256 has a sensitivity
    with pytest.raises(DataError, match=r"coil maps are zero on 100% of the image: .*ACS"):
        build_physics(maps, torch.ones(16, 16))
    maps[:, 4:12, 4:12] = 0.5                  # a quarter of the image: a real (if small) support
    build_physics(maps, torch.ones(16, 16))


def test_solvers_refuse_a_deepinv_physics_with_empty_coil_maps():
    """Maps built outside the package (deepinv's MRISliceTransform ESPIRiT from too few ACS lines comes back all
    zero) stop every solver with the reason, before any network call."""
    import deepinv as dinv
    import pytest

    from padis_plugin.errors import DataError
    from padis_plugin.solvers.dds import DDS
    from padis_plugin.solvers.pnp import build_pnp

    maps = torch.zeros(1, 3, 32, 32, dtype=torch.complex64)
    physics = dinv.physics.MultiCoilMRI(mask=torch.ones(1, 1, 32, 32), coil_maps=maps, img_size=(1, 2, 32, 32))
    y = physics.A(torch.randn(1, 2, 32, 32))
    never = lambda x, sigma: pytest.fail("the denoiser ran")  # noqa: E731
    for solver in (DDS(never, steps=2), build_pnp(never, iterations=2)):
        with pytest.raises(DataError, match="coil maps are zero on 100% .*ACS"):
            solver(y, physics)
