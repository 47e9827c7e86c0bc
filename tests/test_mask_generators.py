"""The package's mask generators as deepinv BaseMaskGenerators: today's masks bit for bit, deepinv's shapes, and
deepinv's MRISliceTransform with its ESPIRiT on our ACS width."""
import deepinv as dinv
import pytest
import torch
from deepinv.physics.generator import BaseMaskGenerator

from padis_plugin import CartesianMaskGenerator, PoissonDiscMaskGenerator, cartesian_mask
from padis_plugin.acquisition.poisson import poisson_mask
from padis_plugin.errors import ConfigError


def _masks_before(shape, acceleration, acs, batch, seed):
    """What CartesianMaskGenerator.step returned before it was a BaseMaskGenerator (same seed draws)."""
    rng = torch.Generator().manual_seed(seed)
    seeds = torch.randint(0, 2**31 - 1, (max(batch, 1),), generator=rng)
    return torch.stack([cartesian_mask(shape, acceleration, acs, int(s)) for s in seeds])[:, None]


def test_cartesian_generator_is_deepinv_and_keeps_its_masks():
    gen = CartesianMaskGenerator((64, 64), acceleration=4)
    assert isinstance(gen, BaseMaskGenerator) and gen.n_center == gen.acs_lines == 4
    assert gen.n_lines == 16 - 4
    a = gen.step(batch_size=3, seed=7)["mask"]
    assert a.shape == (3, 1, 64, 64) and torch.equal(a, _masks_before((64, 64), 4, 4, 3, 7))
    assert gen.step(batch_size=0, seed=7)["mask"].shape == (1, 64, 64)           # deepinv: (C, H, W)
    assert torch.equal(gen.step(batch_size=0, seed=7)["mask"], a[0])
    two = CartesianMaskGenerator((2, 64, 64), acceleration=4).step(batch_size=2, seed=7)["mask"]
    assert two.shape == (2, 2, 64, 64) and torch.equal(two[:, 0], two[:, 1]) and torch.equal(two[:, :1], a[:2])
    other = gen.step(batch_size=1, seed=7, img_size=(32, 48))["mask"]           # img_size: the grid of this step
    assert other.shape == (1, 1, 32, 48) and int(other[0, 0, 0].sum()) == 12
    assert gen.n_center == 4 and gen.step(batch_size=1)["mask"].shape == (1, 1, 64, 64)
    pdf = gen.get_pdf()
    assert pdf.shape == (64,) and float(pdf.sum()) == pytest.approx(16.0)
    assert CartesianMaskGenerator(64, 4, center_fraction=0.125).n_center == 8
    with pytest.raises(ConfigError, match="acs_lines or center_fraction"):
        CartesianMaskGenerator(64, 4, acs_lines=8, center_fraction=0.1)
    with pytest.raises(ConfigError, match="exceeds"):
        CartesianMaskGenerator(64, 8, acs_lines=12)
    with pytest.raises(ConfigError, match="batch_size"):
        gen.step(batch_size=-1)


def test_poisson_generator_is_deepinv():
    gen = PoissonDiscMaskGenerator((48, 48), acceleration=4, acs_lines=8)
    assert isinstance(gen, BaseMaskGenerator) and gen.n_center == 8
    m = gen.step(batch_size=2, seed=3)["mask"]
    assert m.shape == (2, 1, 48, 48) and torch.equal(m, gen.step(batch_size=2, seed=3)["mask"])
    rng = torch.Generator().manual_seed(3)
    s0 = int(torch.randint(0, 2**31 - 1, (2,), generator=rng)[0])
    assert torch.equal(m[0, 0], poisson_mask((48, 48), 4, 8, s0))
    assert gen.get_pdf().shape == (48,)
    with pytest.raises(ConfigError, match="outside"):
        PoissonDiscMaskGenerator(48, acceleration=1.0)


def test_generators_inside_deepinv_mri_slice_transform():
    """MRISliceTransform takes our generator: its mask (C, H, W), its ESPIRiT over our ACS width, and the
    MultiCoilMRI built from its outputs measures what the mask keeps."""
    from deepinv.datasets import MRISliceTransform

    H = W = 64
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W), indexing="ij")
    image = ((xx ** 2 + yy ** 2) < 0.6).float() * (1 + 0.3 * xx)
    coils = torch.stack([torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2)) for cx, cy in ((-1, 0), (1, 0), (0, 1))])
    kspace = torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(coils * image, dim=(-2, -1)), norm="ortho"),
                                dim=(-2, -1))
    kspace = torch.stack([kspace.real, kspace.imag])                           # (2, N, H, W) as fastMRI gives
    for gen in (CartesianMaskGenerator((H, W), acceleration=4, acs_lines=16),
                PoissonDiscMaskGenerator((H, W), acceleration=4, acs_lines=16)):
        transform = MRISliceTransform(mask_generator=gen, estimate_coil_maps=True)
        assert transform.get_acs() == 16
        _, y, params = transform(torch.zeros(1, H, W), kspace, seed="file1.h5-3")
        _, y2, params2 = transform(torch.zeros(1, H, W), kspace, seed="file1.h5-3")
        mask, maps = params["mask"], params["coil_maps"]
        assert mask.shape == (1, H, W) and torch.equal(mask, params2["mask"])
        assert maps.shape == (3, H, W) and float(maps.abs().amax()) > 0.5
        physics = dinv.physics.MultiCoilMRI(mask=mask[None], coil_maps=maps[None], img_size=(1, 2, H, W))
        kept = physics.A(torch.randn(1, 2, H, W)).abs().sum(dim=(0, 1, 2)) > 0
        assert torch.equal(kept.float(), mask[0])
