"""fastMRI-format files: written files load in fastmri and deepinv loaders; bad input raises DataError."""
import h5py
import numpy as np
import pytest
import torch

from padis_plugin.data.fastmri_format import (
    FastMRISlice, make_ismrmrd_header, normalize_contrast, read_fastmri_slices, write_fastmri_h5)
from padis_plugin.data.raw_ingest import ingest_npy_kspace
from padis_plugin.errors import DataError
from padis_plugin.kspace import ifft2c


def _kspace(s=3, c=4, h=16, w=12, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((s, c, h, w)) + 1j * rng.standard_normal((s, c, h, w))).astype(np.complex64)


@pytest.fixture
def volume(tmp_path):
    path = write_fastmri_h5(tmp_path / "vol" / "p01_T2.h5", _kspace(), None, acquisition="AXT2", patient_id="p01")
    return path


def test_both_loaders_read_written_file_and_target_is_rss(volume):
    import fastmri
    from deepinv.datasets import FastMRISliceDataset
    from fastmri.data import SliceDataset

    ds = SliceDataset(volume.parent, challenge="multicoil")
    assert len(ds) == 3
    kspace, mask, target, attrs, fname, _ = ds[1]
    assert mask is None and attrs["acquisition"] == "AXT2" and attrs["patient_id"] == "p01"
    assert attrs["recon_size"] == (16, 12, 1) and (attrs["padding_left"], attrs["padding_right"]) == (0, 12)
    rss = fastmri.rss_complex(fastmri.ifft2c(torch.view_as_real(torch.from_numpy(kspace))), dim=0)
    np.testing.assert_allclose(rss.numpy(), target, rtol=1e-5, atol=1e-6)
    with h5py.File(volume) as f:
        assert f.attrs["max"] == pytest.approx(f["reconstruction_rss"][()].max())
    x, y = FastMRISliceDataset(volume.parent)[2]
    assert tuple(x.shape) == (1, 16, 12) and tuple(y.shape) == (2, 4, 16, 12)


def test_read_slices_selection_and_contrast(volume, tmp_path):
    write_fastmri_h5(volume.parent / "p02_flair.h5", _kspace(s=2, seed=1), None, acquisition="", patient_id="p02")
    slices = list(read_fastmri_slices(volume.parent))
    assert [(s.patient_id, s.slice_index, s.contrast) for s in slices] == [
        ("p01", 0, "T2"), ("p01", 1, "T2"), ("p01", 2, "T2"), ("p02", 0, "FLAIR"), ("p02", 1, "FLAIR")]
    s = slices[1]
    assert isinstance(s, FastMRISlice) and s.kspace.dtype == np.complex64 and s.kspace.shape == (4, 16, 12)
    np.testing.assert_array_equal(s.kspace, _kspace()[1])
    assert not s.undersampled and s.mask is None and s.source_file == str(volume)
    assert [s.slice_index for s in read_fastmri_slices(volume.parent, "centre")] == [1, 1]
    assert [s.slice_index for s in read_fastmri_slices(volume, [0, -1])] == [0, 2]
    assert [s.patient_id for s in read_fastmri_slices(volume.parent, 0, contrasts=["flair"])] == ["p02"]
    with pytest.raises(DataError, match="out of range"):
        list(read_fastmri_slices(volume, 5))


def test_contrast_names():
    assert [normalize_contrast(n) for n in ("AXT1PRE", "AXT1POST", "AXT1", "AXT2", "AXFLAIR", "T1w", "T2W")] == [
        "T1PRE", "T1POST", "T1", "T2", "FLAIR", "T1", "T2"]
    assert normalize_contrast("file_brain_AXT2_200_2000019") == "T2"
    assert normalize_contrast("sub-29_T1w") == "T1" and normalize_contrast("xyz") == "UNKNOWN"


def test_header_is_parsed_by_fastmri():
    import xml.etree.ElementTree as etree

    from fastmri.data.mri_data import et_query

    root = etree.fromstring(make_ismrmrd_header(640, 368, 320, 320))
    assert et_query(root, ["encoding", "encodedSpace", "matrixSize", "x"]) == "640"
    assert et_query(root, ["encoding", "reconSpace", "matrixSize", "y"]) == "320"
    assert et_query(root, ["encoding", "encodingLimits", "kspace_encoding_step_1", "center"]) == "184"


@pytest.mark.parametrize("kind", ["line", "2d"])
def test_undersampled_mask_roundtrip_and_deepinv(tmp_path, kind):
    from deepinv.datasets import FastMRISliceDataset

    rng = np.random.default_rng(0)
    mask = np.tile(rng.random(12) < 0.5, (16, 1)) if kind == "line" else rng.random((16, 12)) < 0.3
    ksp = _kspace(s=1) * mask
    path = write_fastmri_h5(tmp_path / "u.h5", ksp, None, "AXT1", "p", mask=mask)
    with h5py.File(path) as f:
        assert ("mask" in f) == (kind == "line") and bool(f.attrs["undersampled"])
    (s,) = read_fastmri_slices(path)
    assert s.undersampled and s.mask.shape == (16, 12)
    np.testing.assert_array_equal(s.mask, mask.astype(np.float32))
    FastMRISliceDataset(tmp_path)[0]  # default transform accepts the file


def test_raw_ingest_synthetic(tmp_path):
    rng = np.random.default_rng(3)
    ksp = (rng.standard_normal((4, 20, 14)) + 1j * rng.standard_normal((4, 20, 14))).astype(np.complex64)
    mask = rng.random((20, 14)) < 0.3
    mask[7:13, 4:10] = True
    np.save(tmp_path / "raw.npy", ksp * mask)
    out = ingest_npy_kspace(tmp_path / "raw.npy", tmp_path / "out" / "raw.h5", "subj", "AXT1")
    (s,) = read_fastmri_slices(out)
    assert s.kspace.shape == (4, 14, 20) and s.undersampled and s.contrast == "T1" and s.patient_id == "subj"
    np.testing.assert_array_equal(s.kspace, (ksp * mask).transpose(0, 2, 1))
    np.testing.assert_array_equal(s.mask, mask.T.astype(np.float32))
    with h5py.File(out) as f:
        assert not f.attrs["reconstruction_is_ground_truth"] and f.attrs["calibration_size"] == 6
        np.testing.assert_allclose(f["reconstruction_rss"][0],
                                   np.sqrt((np.abs(ifft2c(s.kspace)) ** 2).sum(0)), rtol=1e-5, atol=1e-6)
    np.save(tmp_path / "real.npy", np.ones((4, 8, 8)))
    with pytest.raises(DataError, match="real.npy.*complex"):
        ingest_npy_kspace(tmp_path / "real.npy", tmp_path / "x.h5", "s", "AXT1")
    with pytest.raises(DataError, match="axes"):
        ingest_npy_kspace(tmp_path / "raw.npy", tmp_path / "x.h5", "s", "AXT1", axes="coil,ky,ky")
    assert not (tmp_path / "x.h5").exists()


def _bad_file(tmp_path, kind):
    path = tmp_path / "bad" / f"{kind}.h5"
    path.parent.mkdir()
    good = _kspace(s=2)
    if kind == "not_hdf5":
        path.write_text("hello")
        return path
    if kind == "truncated":
        write_fastmri_h5(path, good, None, "AXT1", "p")
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path
    arrays = {"missing_kspace": None, "single_coil": good[:, 0], "rank5": good[None], "real": good.real,
              "nonfinite": np.where(np.arange(12) == 3, np.nan, 1).astype(np.complex64) * good}
    if kind in _EDITS:
        write_fastmri_h5(path, good, None, "AXT1", "p")
        with h5py.File(path, "a") as f:
            _EDITS[kind](f)
        return path
    with h5py.File(path, "w") as f:
        if arrays[kind] is not None:
            f["kspace"] = arrays[kind]
        f["ismrmrd_header"] = make_ismrmrd_header(16, 12)
    return path


def _huge_declared(f):
    del f["kspace"]
    f.create_dataset("kspace", shape=(10 ** 7, 3, 64, 32), dtype=np.complex64)  # a few kB declaring 49 GB


def _header_group(f):
    del f["ismrmrd_header"]
    f.create_group("ismrmrd_header")


_EDITS = {"huge_declared": _huge_declared, "header_group": _header_group,
          "mask_2d": lambda f: f.create_dataset("mask", data=np.ones((16, 12), np.float32)),
          "mask_length": lambda f: f.create_dataset("mask", data=np.ones(5, np.float32)),
          "sampling_mask_shape": lambda f: f.create_dataset("sampling_mask", data=np.ones((3, 3), np.float32)),
          "undersampled_text": lambda f: f.attrs.__setitem__("undersampled", "no")}


@pytest.mark.parametrize("kind, message", [
    ("not_hdf5", "not a readable HDF5"), ("truncated", "HDF5"), ("missing_kspace", "no 'kspace'"),
    ("single_coil", "multi-coil k-space expected"), ("rank5", "multi-coil k-space expected"),
    ("real", "must be complex"), ("nonfinite", "non-finite"),
    ("huge_declared", r"'kspace' declares shape \(10000000, 3, 64, 32\) .* but the file stores 0 bytes"),
    ("header_group", "'ismrmrd_header' must be a dataset"), ("mask_2d", r"'mask' must be a \(W,\) = \(12,\)"),
    ("mask_length", r"'mask' must be a \(W,\)"), ("sampling_mask_shape", r"'sampling_mask' must be an \(H, W\)"),
    ("undersampled_text", "attribute 'undersampled' must be a boolean, got 'no'")])
def test_bad_files_raise_data_error(tmp_path, kind, message):
    path = _bad_file(tmp_path, kind)
    with pytest.raises(DataError, match=message) as err:
        list(read_fastmri_slices(path.parent))
    assert str(path) in str(err.value)


def test_missing_and_empty(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        list(read_fastmri_slices(tmp_path / "nope.h5"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty.*no .h5 files"):
        list(read_fastmri_slices(tmp_path / "empty"))
    with h5py.File(tmp_path / "nohdr.h5", "w") as f:
        f["kspace"] = _kspace(s=1)
    with pytest.raises(DataError, match="nohdr.h5.*ismrmrd_header"):
        list(read_fastmri_slices(tmp_path / "nohdr.h5"))
    write_fastmri_h5(tmp_path / "hdr" / "x.h5", _kspace(s=1), None, "AXT1", "p", header_xml="<x/>")
    with pytest.raises(DataError, match="x.h5: bad ismrmrd_header"):
        list(read_fastmri_slices(tmp_path / "hdr"))
    with pytest.raises(DataError, match="contrast"):
        list(read_fastmri_slices(tmp_path / "hdr", contrasts=["T2"]))


def test_an_unknown_contrast_is_named(volume):
    with pytest.raises(DataError, match=r"unknown contrast\(s\) \['XYZ'\]; known: \["):
        list(read_fastmri_slices(volume, contrasts=["T1", "XYZ"]))
