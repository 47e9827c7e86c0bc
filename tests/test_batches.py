"""Batches the deepinv way: a DataLoader over prepared slices with ``collate_slices``, one batched problem, a
solver on it, and per-slice metrics that equal the slices solved one by one."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from padis_plugin import (PreparedDataset, batch_problems, build_solver, cartesian_mask, collate_slices,
                          image_metrics, prepare_slice, slice_problem)
from padis_plugin.data.prepared import write_prepared
from padis_plugin.errors import DataError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, slice_factory):
    slices = [dataclasses.replace(slice_factory(32, coils=4, acs=8, seed=i), id=f"v{i}:0") for i in range(3)]
    return PreparedDataset(write_prepared(tmp_path_factory.mktemp("b") / "p.h5", slices))


def test_a_dataloader_batch_solves_like_its_slices_one_by_one(dataset):
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=collate_slices)
    batch = next(iter(loader))
    assert [s.id for s in batch] == ["v0:0", "v1:0"]
    mask = cartesian_mask(32, 4, 8, 0)
    y, physics, x_ref = batch_problems(batch, mask)
    assert y.shape[0] == 2 and x_ref.shape == (2, 2, 32, 32)
    solver = build_solver("sense", {"iterations": 5})
    both = image_metrics(solver(y, physics), x_ref)
    assert isinstance(both, list) and len(both) == 2
    for slc, got in zip(batch, both):
        y1, physics1, x1 = slice_problem(slc, mask)
        assert got == pytest.approx(image_metrics(solver(y1, physics1), x1), rel=1e-4)


def test_collate_refuses_what_it_cannot_batch(dataset, slice_factory):
    with pytest.raises(DataError, match="collate_slices batches PreparedSlice items, got dict"):
        collate_slices([{"kspace": 1}])
    with pytest.raises(DataError, match=r"share one grid, got sizes \[32, 48\]"):
        collate_slices([dataset[0], dataclasses.replace(slice_factory(48, coils=4, acs=8), id="big:0")])
    with pytest.raises(DataError, match="a batch of 2 reconstructions needs as many references"):
        image_metrics(torch.zeros(2, 2, 8, 8), torch.zeros(1, 2, 8, 8))


def test_prepare_slice_is_public():
    assert callable(prepare_slice)
