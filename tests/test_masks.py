import math

import numpy as np
import pytest
import torch

from padis_plugin.errors import ConfigError
from padis_plugin.acquisition.masks import cartesian_mask, cartesian_masks


@pytest.mark.parametrize("R", [2, 3.5, 4, 7, 10])
def test_line_count_and_acs(R):
    mask = cartesian_mask((32, 384), R, acs_lines=20, seed=3)
    assert mask.dtype == torch.float32 and mask.shape == (32, 384)
    cols = mask[0].bool()
    assert (mask == mask[:1]).all()  # whole columns: lines along H
    assert int(cols.sum()) == math.floor(384 / R)
    assert cols[182:202].all()  # ACS block (W - acs) // 2 .. + acs, as in the paper


def test_seeds_reproducible_and_distinct():
    a, b = cartesian_mask(64, 4, 8, seed=1), cartesian_mask(64, 4, 8, seed=1)
    assert torch.equal(a, b)
    assert not torch.equal(a, cartesian_mask(64, 4, 8, seed=2))
    stack = cartesian_masks(64, 4, 8, seeds=range(10))
    assert stack.shape == (10, 64, 64)
    assert torch.equal(stack[1], a)
    assert len({tuple(m[0].tolist()) for m in stack}) == 10
    assert (stack[:, 0].sum(-1) == 16).all()


def test_all_acs_and_full():
    assert cartesian_mask(64, 4, acs_lines=16).sum() == 64 * 16
    assert cartesian_mask(64, 1, acs_lines=0).all()


@pytest.mark.parametrize("kwargs", [dict(acceleration=0.5), dict(acceleration=17), dict(acs_lines=17),
                                    dict(acs_lines=-1), dict(shape=(0, 64))])
def test_invalid(kwargs):
    args = dict(shape=64, acceleration=4, acs_lines=8) | kwargs
    with pytest.raises(ConfigError):
        cartesian_mask(**args)


def test_default_acs_lines_scales_the_paper_fraction():
    from padis_plugin.acquisition.masks import default_acs_lines

    assert default_acs_lines(384) == 24 and default_acs_lines(128) == 8 and default_acs_lines(16) == 1
