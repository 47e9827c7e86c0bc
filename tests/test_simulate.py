"""Simulation: unit-RSS coil maps, SNR and noise covariance as requested, deterministic fastMRI-format files."""
import h5py
import numpy as np
import pytest

from padis_plugin.cli.simulate import main
from padis_plugin.data.fastmri_format import read_fastmri_slices
from padis_plugin.data.simulate import (birdcage_coil_maps, object_mask, simulate_files, simulate_slice,
                                        to_physical_grid)
from padis_plugin.errors import DataError
from padis_plugin.kspace import ifft2c


def _phantom(h=32, w=32):
    y, x = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    return ((x**2 / 0.7 + y**2 / 0.9) < 0.8) * (1.0 + 0.5 * (x > 0.2))


@pytest.fixture
def slices_h5(tmp_path):
    """Source in the brain_slices.h5 layout: two studies of one patient, one other subject, mixed sizes."""
    path = tmp_path / "src.h5"
    with h5py.File(path, "w") as f:
        for key, subject, contrast, z, shape in [
                ("a_z1", "p01__study1", "T1W", 1, (32, 32)), ("a_z2", "p01__study1", "T1W", 2, (40, 36)),
                ("b_z1", "p01__study2", "FLAIR", 1, (32, 32)), ("c_z5", "sub-7", "T1w", 5, (32, 28))]:
            ds = f.create_dataset(f"slices/{key}", data=_phantom(*shape).astype(np.float16))
            ds.attrs.update(subject=subject, contrast=contrast, slice_index=z)
    return path


def test_birdcage_maps_unit_rss():
    maps = birdcage_coil_maps(4, (32, 24))
    assert maps.shape == (4, 32, 24) and maps.dtype == np.complex64
    np.testing.assert_allclose(np.sqrt((np.abs(maps) ** 2).sum(0)), 1.0, rtol=1e-5)


def test_snr_matches_request_and_oversampling_shape():
    image = _phantom(64, 64)
    clean = simulate_slice(image, coils=4, snr_db=None, seed=3)
    noisy, sigma = simulate_slice(image, coils=4, snr_db=20.0, seed=3, return_sigma=True)
    noise = ifft2c(noisy) - ifft2c(clean)
    signal = np.abs(ifft2c(clean))[:, object_mask(image)].mean()
    measured = 20 * np.log10(signal / np.sqrt(np.mean(np.abs(noise) ** 2)))
    assert measured == pytest.approx(20.0, abs=0.3) and np.std(noise) > 0.5 * sigma
    over = simulate_slice(image, coils=4, snr_db=None, seed=3, readout_oversampling=2)
    assert over.shape == (4, 128, 64)
    np.testing.assert_allclose(ifft2c(over)[:, 32:96], ifft2c(clean), atol=1e-5)
    assert simulate_slice(image, coils=2, matrix=(16, 20)).shape == (2, 16, 20)


def test_correlated_noise_covariance():
    image = _phantom(64, 64)
    clean = simulate_slice(image, coils=4, snr_db=None, seed=1)
    noisy, sigma = simulate_slice(image, coils=4, snr_db=10.0, seed=1, noise_correlation=0.5, return_sigma=True)
    n = (noisy - clean).reshape(4, -1)
    cov = n @ n.conj().T / n.shape[1] / sigma**2
    np.testing.assert_allclose(np.diag(cov).real, 1.0, atol=0.1)
    off = np.abs(cov[~np.eye(4, dtype=bool)])
    np.testing.assert_allclose(off, 0.5, atol=0.06)
    white = simulate_slice(image, coils=4, snr_db=10.0, seed=1) - clean
    w = white.reshape(4, -1)
    assert np.abs((w @ w.conj().T / w.shape[1] / sigma**2)[~np.eye(4, dtype=bool)]).max() < 0.1


def test_simulate_files_layout_loaders_and_rss(slices_h5, tmp_path):
    import fastmri
    import torch
    from deepinv.datasets import FastMRISliceDataset
    from fastmri.data import SliceDataset
    from fastmri.data.transforms import center_crop

    out = tmp_path / "out"
    paths = simulate_files(slices_h5, out, coils=4, snr_db=30, seed=0, progress=False, readout_oversampling=2)
    assert [p.name for p in paths] == ["p01__study1_T1.h5", "p01__study2_FLAIR.h5", "sub-7_T1.h5"]
    with h5py.File(paths[0]) as f:
        assert f["kspace"].shape == (2, 4, 64, 32) and f["reconstruction_rss"].shape == (2, 32, 32)
        assert f.attrs["patient_id"] == "p01" and f.attrs["acquisition"] == "AXT1"
        assert list(f.attrs["source_slice_index"]) == [1, 2]
    ds = SliceDataset(out, challenge="multicoil")
    assert len(ds) == 4
    for i in range(len(ds)):
        kspace, _, target, attrs, _, _ = ds[i]
        rss = fastmri.rss_complex(fastmri.ifft2c(torch.view_as_real(torch.from_numpy(kspace))), dim=0)
        rss = center_crop(rss, target.shape)
        np.testing.assert_allclose(rss.numpy(), target, rtol=1e-4, atol=1e-5)
    assert len(FastMRISliceDataset(out)) == 4
    got = [(s.patient_id, s.contrast) for s in read_fastmri_slices(out, "centre")]
    assert got == [("p01", "T1"), ("p01", "FLAIR"), ("sub-7", "T1")]
    only = simulate_files(slices_h5, tmp_path / "o2", coils=2, subjects=["p01"], contrasts=["flair"], progress=False)
    assert [p.name for p in only] == ["p01__study2_FLAIR.h5"]


def test_same_seed_same_files_different_seed_differs(slices_h5, tmp_path):
    def kspace(seed, name):
        (path,) = simulate_files(slices_h5, tmp_path / name, coils=2, seed=seed, subjects=["sub-7"], progress=False)
        with h5py.File(path) as f:
            return f["kspace"][()]

    a, b, c = kspace(0, "a"), kspace(0, "b"), kspace(1, "c")
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_physical_grid_keeps_anatomy_size():
    # A 40 x 30 object at 0.5 mm is 20 x 15 mm: on a 1 mm grid it covers 20 x 15 pixels, centred.
    image = np.ones((40, 30))
    out = to_physical_grid(image, (0.5, 0.5), 1.0, 32)
    assert out.shape == (32, 32)
    rows, cols = np.nonzero(out > 0.5)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (20, 15)
    assert rows.min() == 6 and cols.min() == 8
    # Larger than the field of view: centre crop.
    assert to_physical_grid(np.ones((80, 80)), (1.0, 1.0), 1.0, 32).min() == 1.0
    with pytest.raises(DataError, match="pixel spacing"):
        to_physical_grid(image, (0.0, 0.5), 1.0, 32)


def test_simulate_files_on_physical_grid(slices_h5, tmp_path):
    with pytest.raises(DataError, match="pixel_spacing_mm"):
        simulate_files(slices_h5, tmp_path / "x", coils=2, matrix=32, spacing_mm=1.0, progress=False)
    with h5py.File(slices_h5, "a") as f:
        for ds in f["slices"].values():
            ds.attrs["pixel_spacing_mm"] = [0.5, 0.5]
    with pytest.raises(DataError, match="needs a matrix"):
        simulate_files(slices_h5, tmp_path / "x", coils=2, spacing_mm=1.0, progress=False)
    (path,) = simulate_files(slices_h5, tmp_path / "o", coils=2, matrix=32, spacing_mm=1.0, subjects=["sub-7"],
                             snr_db=None, progress=False)
    with h5py.File(path) as f:
        rss = f["reconstruction_rss"][0]
        assert rss.shape == (32, 32) and f.attrs["spacing_mm"] == 1.0
    # The 32 x 28 source at 0.5 mm is 16 x 14 mm: the rest of the 32 mm field of view is empty.
    assert rss[:6].max() < 1e-3 * rss.max() and rss[10:22, 10:22].mean() > 0.1 * rss.max()


def test_npy_stack_source(tmp_path):
    np.save(tmp_path / "vol_T2w.npy", np.stack([_phantom(), _phantom()]))
    (path,) = simulate_files(tmp_path / "vol_T2w.npy", tmp_path / "out", coils=2, subject="s9", progress=False)
    assert path.name == "s9_T2.h5"
    assert [s.slice_index for s in read_fastmri_slices(path)] == [0, 1]


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


@pytest.mark.parametrize("kind", ["missing", "nonfinite", "no_slices", "not_hdf5"])
def test_cli_errors_exit_2_and_write_nothing(tmp_path, capsys, kind):
    src = tmp_path / f"{kind}.h5"
    if kind == "nonfinite":
        with h5py.File(src, "w") as f:
            ds = f.create_dataset("slices/x", data=np.full((8, 8), np.nan))
            ds.attrs.update(subject="s", contrast="T1W", slice_index=0)
    elif kind == "no_slices":
        with h5py.File(src, "w") as f:
            f["a"], f["b"] = np.ones((2, 8, 8)), np.ones((2, 8, 8))
    elif kind == "not_hdf5":
        src.write_text("nope")
    out = tmp_path / "out"
    code, cap = _run([src, "--out", out, "--coils", 2, "--no-progress"], capsys)
    assert code == 2 and cap.err.startswith("error: ") and str(src) in cap.err
    assert cap.err.count("\n") == 1
    assert not out.exists() or not any(out.iterdir())


def test_cli_simulate_and_raw(tmp_path, capsys, slices_h5):
    code, cap = _run([slices_h5, "--out", tmp_path / "o", "--coils", 2, "--matrix", 16, "--no-progress",
                      "--subjects", "sub-7"], capsys)
    assert code == 0 and cap.out.strip().endswith("sub-7_T1.h5")
    assert next(read_fastmri_slices(tmp_path / "o")).kspace.shape == (2, 16, 16)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "raw.npy", (rng.standard_normal((2, 10, 8)) * (rng.random((10, 8)) < 0.5)).astype(np.complex64))
    code, cap = _run(["--raw-npy", tmp_path / "raw.npy", "--out", tmp_path / "r"], capsys)
    assert code == 0 and next(read_fastmri_slices(tmp_path / "r")).undersampled
    with pytest.raises(SystemExit) as e:
        main(["--out", str(tmp_path / "x")])
    assert e.value.code == 2
