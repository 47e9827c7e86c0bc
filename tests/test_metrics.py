import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from padis_plugin.errors import DataError
from padis_plugin.metrics import brain_mask, image_metrics, paired_difference, pixelwise_std


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    ref = (rng.random((32, 40)) + 1j * rng.random((32, 40))).astype(np.complex64)
    rec = ref + 0.05 * (rng.standard_normal((32, 40)) + 1j * rng.standard_normal((32, 40)))
    return ref, rec


def test_image_metrics_by_hand(pair):
    ref, rec = pair
    m = image_metrics(rec, ref)
    a, b = np.abs(ref.astype(np.complex128)), np.abs(rec)
    dr = a.max() - a.min()
    assert m["psnr"] == pytest.approx(20 * np.log10(dr / np.sqrt(np.mean((a - b) ** 2))), rel=1e-10)
    assert m["nrmse"] == pytest.approx(np.linalg.norm(a - b) / np.linalg.norm(a), rel=1e-10)
    assert m["ssim"] == pytest.approx(structural_similarity(a, b, data_range=dr), rel=1e-10)


def test_torch_layouts_and_crop(pair):
    ref, rec = pair
    t = torch.stack([torch.from_numpy(rec.real), torch.from_numpy(rec.imag)]).float()
    ref_t = torch.stack([torch.from_numpy(ref.real), torch.from_numpy(ref.imag)])[None]
    m_np, m_t = image_metrics(rec, ref), image_metrics(t, ref_t)
    assert m_t["psnr"] == pytest.approx(m_np["psnr"], abs=1e-4)
    cropped = image_metrics(rec, ref, crop=(16, 20))
    assert cropped == image_metrics(rec[8:24, 10:30], ref[8:24, 10:30])
    with pytest.raises(DataError):
        image_metrics(rec[:, :30], ref)


def test_paired_difference():
    mean, sd = paired_difference([3.0, 5.0, 7.0], [1.0, 1.0, 1.0])
    assert (mean, sd) == pytest.approx((4.0, np.std([2.0, 4.0, 6.0])))
    with pytest.raises(DataError):
        paired_difference([1.0], [1.0, 2.0])


def test_brain_mask_and_pixelwise_std():
    img = np.zeros((32, 32), complex)
    img[8:24, 8:24] = 1.0
    img[15, 15] = 0.0  # a hole gets filled
    mask = brain_mask(img)
    assert mask.dtype == bool and mask.sum() == 16 * 16
    recons = np.stack([np.full((4, 4), 1 + 1j), np.full((4, 4), -1 - 1j)])
    assert np.allclose(pixelwise_std(recons), np.sqrt(2))


def test_brain_mask_clip_is_the_published_option():
    """clip=1 thresholds min(|x|, 1) as the published uncertainty notebook does; here the bright spot above 1 moves
    Otsu's threshold above the 0.3 tissue unless it is clipped."""
    img = np.zeros((32, 32))
    img[4:28, 4:28], img[10:22, 10:22], img[14:18, 14:18] = 0.3, 0.9, 4.0
    assert brain_mask(img).sum() == 12 * 12
    assert brain_mask(img, clip=1.0).sum() == 24 * 24
    assert np.array_equal(brain_mask(img, clip=1.0), brain_mask(np.minimum(img, 1.0)))
