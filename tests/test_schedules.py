"""edm_sigmas: the EDM / Karras schedule used by the PaDIS-MRI sampler."""
import math

import pytest
import torch

from padis_plugin.errors import ConfigError
from padis_plugin.prior.schedules import edm_sigmas


def test_paper_schedule_endpoints_monotone_and_length():
    s = edm_sigmas(104, 10.0, 0.003, 7.0)
    assert s.shape == (104,) and s.dtype == torch.float64
    assert s[0].item() == 10.0 and s[-1].item() == 0.003
    assert (s[1:] < s[:-1]).all()


def test_middle_value_by_hand():
    # K = 3, i = 1: ((10^(1/7) + 0.003^(1/7)) / 2)^7
    mid = ((10 ** (1 / 7) + 0.003 ** (1 / 7)) / 2) ** 7
    assert edm_sigmas(3, 10.0, 0.003, 7.0)[1].item() == pytest.approx(mid, rel=1e-12)
    assert mid == pytest.approx(0.5280, abs=1e-3)  # by hand: 10^(1/7) = 1.3895, 0.003^(1/7) = 0.4361
    # rho = 1 is a linear ramp
    assert torch.allclose(edm_sigmas(5, 4.0, 2.0, 1.0), torch.tensor([4.0, 3.5, 3.0, 2.5, 2.0], dtype=torch.float64))


def test_formula_every_index():
    K, smax, smin, rho = 11, 80.0, 0.002, 7.0
    s = edm_sigmas(K, smax, smin, rho)
    for i in range(K):
        ref = (smax ** (1 / rho) + i / (K - 1) * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
        assert math.isclose(s[i].item(), ref, rel_tol=1e-12)


def test_single_level_and_bad_arguments():
    assert edm_sigmas(1, 5.0, 0.1).tolist() == [5.0]
    for args in [(0, 10, 0.1, 7), (2.5, 10, 0.1, 7), (10, 0.1, 10, 7), (10, 10, 0, 7), (10, 10, 0.1, 0)]:
        with pytest.raises(ConfigError):
            edm_sigmas(*args)
