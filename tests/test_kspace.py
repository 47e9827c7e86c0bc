"""Centred FFTs, centre crop, RSS and calibration width: one convention, that of deepinv's MultiCoilMRI."""
import numpy as np
import pytest
import torch
from deepinv.physics import MultiCoilMRI

from padis_plugin.errors import DataError
from padis_plugin.kspace import calibration_width, center_crop, fft2c, ifft2c, rss, rss_of_kspace


def _complex(rng, shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


@pytest.mark.parametrize("h, w", [(16, 16), (15, 12)])
def test_fft2c_is_the_multicoil_mri_forward_model(h, w):
    """Full-mask MultiCoilMRI.A(x) is fft2c(S_c x), and A^H y is sum_c conj(S_c) ifft2c(y_c)."""
    rng = np.random.default_rng(0)
    maps, x = _complex(rng, (3, h, w)), _complex(rng, (h, w))
    physics = MultiCoilMRI(mask=torch.ones(1, 1, h, w), coil_maps=torch.from_numpy(maps)[None],
                           img_size=(1, 2, h, w))
    y = physics.A(torch.from_numpy(np.stack([x.real, x.imag]))[None])  # (1, 2, C, H, W)
    np.testing.assert_allclose((y[0, 0] + 1j * y[0, 1]).numpy(), fft2c(maps * x), atol=1e-5)
    k = fft2c(maps * x)
    back = physics.A_adjoint(torch.from_numpy(np.stack([k.real, k.imag]))[None].float())
    np.testing.assert_allclose((back[0, 0] + 1j * back[0, 1]).numpy(), np.sum(maps.conj() * ifft2c(k), 0), atol=1e-5)


def test_fft_round_trip_is_orthonormal_with_dc_at_the_centre():
    rng = np.random.default_rng(1)
    image = _complex(rng, (2, 9, 10))
    k = fft2c(image)
    np.testing.assert_allclose(ifft2c(k), image, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(k), np.linalg.norm(image), rtol=1e-5)  # Parseval
    assert np.unravel_index(np.abs(fft2c(np.ones((9, 10)))).argmax(), (9, 10)) == (9 // 2, 10 // 2)


def test_center_crop_takes_the_middle_like_fastmri():
    x = np.arange(7 * 8).reshape(7, 8)
    np.testing.assert_array_equal(center_crop(x, (3, 4)), x[2:5, 2:6])  # from (H - h) // 2
    assert center_crop(x, None) is x
    with pytest.raises(DataError, match="does not fit"):
        center_crop(x, (8, 4))


def test_rss_and_rss_of_kspace():
    rng = np.random.default_rng(2)
    images = _complex(rng, (4, 12, 10))
    np.testing.assert_allclose(rss(images), np.linalg.norm(images, axis=0), rtol=1e-6)
    target = rss_of_kspace(fft2c(images), recon_size=(6, 20))  # readout cropped, a too-wide size leaves W whole
    assert target.dtype == np.float32 and target.shape == (6, 10)
    np.testing.assert_allclose(target, np.linalg.norm(images, axis=0)[3:9], rtol=1e-5)


@pytest.mark.parametrize("n", [0, 1, 5, 6, 11])
def test_calibration_width_is_the_square_centred_on_dc(n):
    """A square of n samples from N // 2 - n // 2 (deepinv's DC at N // 2) plus scattered samples elsewhere."""
    h, w = 20, 17
    mask = np.zeros((h, w), bool)
    mask[::5, ::3] = True
    mask[h // 2 - 6:h // 2 + 7, w // 2 + 7:] = True  # sampled off to one side: must not count
    if n:
        mask[h // 2 - n // 2:h // 2 - n // 2 + n, w // 2 - n // 2:w // 2 - n // 2 + n] = True
    gap_row = h // 2 - n // 2 + n if n % 2 == 0 else h // 2 - n // 2 - 1  # the row square n + 1 adds
    mask[gap_row, w // 2] = False
    assert calibration_width(mask) == n
    assert calibration_width(mask.astype(np.float32)) == n
