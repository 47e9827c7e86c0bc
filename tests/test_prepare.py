"""Data preparation: whitening, grid, ESPIRiT, CG-SENSE reference, normalisation, cache, CLI."""
from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest
from skimage.data import shepp_logan_phantom
from skimage.transform import resize

from padis_plugin.cli.prepare import main as prepare_main
from padis_plugin.data import prepare as prep
from padis_plugin.data.bundled import bundled_path, demo_dataset
from padis_plugin.data.fastmri_format import write_fastmri_h5
from padis_plugin.data.prepared import PreparedDataset
from padis_plugin.data.simulate import birdcage_coil_maps, coil_noise_correlation, simulate_slice
from padis_plugin.errors import DataError
from padis_plugin.kspace import fft2c, ifft2c


def phantom(n: int) -> np.ndarray:
    """Shepp-Logan magnitude n x n (zero background in the corners)."""
    return resize(shepp_logan_phantom(), (n, n), order=1, anti_aliasing=True, preserve_range=True)


def write_volume(path, kspace, **kw):
    return write_fastmri_h5(path, kspace[None], acquisition="AXT1", patient_id="p1", **kw)


def test_whitening_matrix_gives_identity_covariance():
    rng = np.random.default_rng(0)
    coils = 6
    corr = 4.0 * coil_noise_correlation(coils, 0.6, rng)  # off-diagonal |0.6|, variance 4
    chol = np.linalg.cholesky(corr)
    noise = lambda n: chol @ (rng.standard_normal((coils, n)) + 1j * rng.standard_normal((coils, n))) / np.sqrt(2)
    w = prep.whitening_matrix(prep.noise_covariance(noise(20000)))
    cov = prep.noise_covariance(prep.apply_coil_matrix(w, noise(20000)))  # fresh samples
    off = np.abs(cov - np.diag(np.diag(cov))).max()
    diag = np.abs(np.diag(cov) - 1).max()
    # measured: off 0.019, diag 0.030 (sampling error ~ 1/sqrt(20000) twice); before: off-diagonal 2.4
    assert off < 0.04 and diag < 0.04
    assert np.allclose(w, np.tril(w))  # W = L^-1 is lower triangular, like BART's whiten


def test_prepare_slice_whitens_correlated_coil_noise():
    n, coils = 64, 4
    corr = coil_noise_correlation(coils, 0.7, np.random.default_rng(0))  # off-diagonal magnitude 0.7
    kspace, sigma = simulate_slice(np.pad(phantom(40), 12), coils, snr_db=20, seed=0,
                                   noise_correlation_matrix=corr, return_sigma=True)
    slc = prep.prepare_slice(kspace, n, noise_region=(12, 64), acs=16)  # top 12 rows are background
    # recover the coil mixing the preparation applied, and apply it to the true noise covariance
    x = ifft2c(kspace).reshape(coils, -1)
    y = (ifft2c(slc.kspace) * slc.norm).reshape(coils, -1)
    w = y @ np.linalg.pinv(x)
    cov = w @ (sigma ** 2 * corr) @ w.conj().T
    off = np.abs(cov - np.diag(np.diag(cov))).max()
    diag = np.abs(np.diag(cov) - 1).max()
    # measured: off 0.028, diag 0.027 (seeds 0-3: up to 0.07 / 0.11; 768 noise samples)
    assert off < 0.15 and diag < 0.15
    assert np.abs(w - np.tril(w)).max() < 1e-3


def test_grid_crops_readout_pads_phase_encode_dc_centred():
    n, coils = 32, 3
    rng = np.random.default_rng(0)
    images = rng.uniform(0.5, 1.0, (coils, 2 * n, n - 7)) * np.exp(0.3j)  # oversampled readout, odd PE
    slc = prep.prepare_slice(fft2c(images).astype(np.complex64), n, whiten=False, acs=16)
    expected = np.zeros((coils, n, n), complex)
    left = n // 2 - (n - 7) // 2  # sigpy.resize: offset out//2 - in//2
    expected[:, :, left:left + n - 7] = images[:, n // 2:n // 2 + n]
    got = ifft2c(slc.kspace * slc.norm)
    assert np.allclose(got, expected, atol=1e-4)
    mag = np.abs(slc.kspace).sum(0)
    assert np.unravel_index(mag.argmax(), mag.shape) == (n // 2, n // 2)


@pytest.fixture(scope="module")
def clean_slice():
    """48 x 48, 6 coils, 45 dB, no whitening: maps and reference comparable with the simulation."""
    n, coils = 48, 6
    image = phantom(n)
    kspace = simulate_slice(image, coils, snr_db=45, seed=3)
    return image, birdcage_coil_maps(coils, (n, n)), prep.prepare_slice(kspace, n, whiten=False)


def test_espirit_recovers_birdcage_maps(clean_slice):
    image, true_maps, slc = clean_slice
    obj = image > 0.1 * image.max()
    m, s = slc.coil_maps, true_maps
    # per-pixel correlation of coil vectors (ESPIRiT phase is referenced to coil 0, absorbed in the image)
    corr = np.abs(np.sum(m * s.conj(), 0)) / (np.linalg.norm(m, axis=0) * np.linalg.norm(s, axis=0))
    assert corr[obj].min() > 0.98  # measured: min 0.9954, mean 0.99993 over the object (46% of pixels)
    # coil images S_c x are phase-unambiguous: maps * reference reproduce the simulated ones
    sim_coils = np.abs(s * image)
    ours = np.abs(m * slc.reference) * slc.norm
    assert np.linalg.norm(ours - sim_coils) / np.linalg.norm(sim_coils) < 0.02  # measured 0.0063


def test_reference_matches_object_magnitude(clean_slice):
    image, _, slc = clean_slice
    ref = np.abs(slc.reference) * slc.norm
    err = np.linalg.norm(ref - image) / np.linalg.norm(image)
    assert err < 0.02  # measured 0.0023 (noise at 45 dB plus CG truncation)


def test_normalisation_and_scaling_equal_recomputation(clean_slice):
    _, _, slc = clean_slice
    assert prep.normalisation_constant(slc.reference, slc.coil_maps, 24) == pytest.approx(1.0, rel=1e-4)
    # maps are scale-invariant and CG from zero is linear: recomputing on the normalised k-space changes nothing
    maps = prep.espirit_maps(slc.kspace)
    assert np.abs(maps - slc.coil_maps).max() < 1e-4  # measured 5.5e-7
    ref = prep.cg_sense(slc.kspace, slc.coil_maps)
    assert np.linalg.norm(ref - slc.reference) / np.linalg.norm(slc.reference) < 1e-5  # measured 1.6e-7


def test_warns_when_noise_corner_holds_signal():
    n = 32
    full = simulate_slice(np.ones((n, n)), 4, snr_db=30, seed=0)  # object fills the field of view: ratio 0.98
    with pytest.warns(prep.BackgroundSignalWarning, match="file.h5"):
        prep.prepare_slice(full, n, noise_region=8, acs=16, source_file="file.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("error", prep.BackgroundSignalWarning)
        prep.prepare_slice(simulate_slice(np.pad(phantom(20), 6), 4, snr_db=30, seed=0), n,
                           noise_region=6, acs=16)  # background corner: ratio 0.018, threshold 0.1


def test_undersampled_input_keeps_mask():
    n, coils = 40, 4
    kspace = simulate_slice(phantom(n), coils, snr_db=40, seed=0)
    mask = np.zeros((n, n), np.float32)
    mask[:, ::3] = 1
    mask[:, n // 2 - 8:n // 2 + 8] = 1
    slc = prep.prepare_slice(kspace * mask, n, mask=mask, acs=24)  # calibration falls back to the 16 centre lines
    assert slc.undersampled and np.array_equal(slc.acquired_mask, mask)
    assert np.all(slc.kspace[:, mask == 0] == 0)
    image = phantom(n)
    assert np.corrcoef(np.abs(slc.reference).ravel(), image.ravel())[0, 1] > 0.95  # measured 0.9993


@pytest.fixture()
def fastmri_file(tmp_path):
    kspace = simulate_slice(np.pad(phantom(24), 4), 3, snr_db=30, readout_oversampling=2, seed=0)
    return write_volume(tmp_path / "src" / "vol_AXT1.h5", kspace)


OPTS = dict(size=32, acs=16, noise_region=4, progress=False)


def test_prepare_file_and_cache(tmp_path, fastmri_file, monkeypatch):
    cache = tmp_path / "cache"
    out = prep.prepare(fastmri_file, tmp_path / "p.h5", cache_dir=cache, **OPTS)
    ds = PreparedDataset(out)
    assert ds.ids == ["vol_AXT1:0"] and ds.meta()[0]["contrast"] == "T1" and ds.meta()[0]["patient_id"] == "p1"
    assert ds.params["size"] == 32 and ds.params["acs"] == 16
    entries = list((cache / "maps").iterdir())
    assert [p.suffix for p in entries] == [".npz"]
    entries[0].write_bytes(b"corrupt")  # a broken cache entry is recomputed, not fatal
    prep.prepare(fastmri_file, tmp_path / "p.h5", cache_dir=cache, **OPTS)

    def boom(*args, **kwargs):
        raise AssertionError("ESPIRiT ran although the maps are cached")

    monkeypatch.setattr(prep, "espirit_maps", boom)
    again = prep.prepare(fastmri_file, tmp_path / "q.h5", cache_dir=cache, **OPTS)
    assert np.array_equal(PreparedDataset(again)[0].coil_maps, ds[0].coil_maps)


def test_prepare_bad_inputs_name_the_file_and_write_nothing(tmp_path, fastmri_file):
    out = tmp_path / "out" / "p.h5"
    with pytest.raises(DataError, match="missing.h5"):
        prep.prepare(tmp_path / "missing.h5", out, cache=False, **OPTS)
    data = fastmri_file.read_bytes()
    truncated = tmp_path / "trunc.h5"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="trunc.h5"):
        prep.prepare(truncated, out, cache=False, **OPTS)
    nonfinite = tmp_path / "nan.h5"
    nonfinite.write_bytes(data)
    with h5py.File(nonfinite, "r+") as f:
        f["kspace"][0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="nan.h5"):
        prep.prepare(nonfinite, out, cache=False, **OPTS)
    assert not out.parent.exists() or not any(out.parent.iterdir())
    with pytest.raises(DataError, match="x.h5"):
        prep.prepare_slice(np.ones((8, 8), np.complex64), 32, source_file="x.h5")
    with pytest.raises(DataError, match="non-finite"):
        prep.prepare_slice(np.full((2, 8, 8), np.inf, np.complex64), 32, acs=16)


def test_cli(tmp_path, fastmri_file, capsys):
    out = tmp_path / "cli.h5"
    args = [str(fastmri_file), "--out", str(out), "--size", "32", "--acs", "16", "--noise-region", "4",
            "--cache-dir", str(tmp_path / "c"), "--no-progress"]
    assert prepare_main(args) == 0 and PreparedDataset(out).size == 32
    assert prepare_main([str(tmp_path / "nope.h5"), "--out", str(tmp_path / "x.h5")]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("error: ") and not (tmp_path / "x.h5").exists()


def test_bundled_and_demo_dataset(tmp_path, monkeypatch):
    assert bundled_path("brain_demo_slices.h5").is_file()
    with pytest.raises(DataError, match="nothing.h5"):
        bundled_path("nothing.h5")
    path = demo_dataset(tmp_path, size=32)
    ds = PreparedDataset(path)
    assert len(ds) == 5 and ds.size == 32 and set(ds.patients()) == {"patient12", "sub-29", "sub-30"}
    monkeypatch.setattr(prep, "prepare", lambda *a, **k: pytest.fail("demo rebuilt although cached"))
    assert demo_dataset(tmp_path, size=32) == path


def test_espirit_maps_that_found_nothing_stop_with_the_acs_width(monkeypatch):
    """ESPIRiT returning (almost) zero maps, as from too narrow a calibration block: a DataError naming the width,
    not a reference and a prepared slice that no solver can reconstruct."""
    from padis_plugin.errors import DataError
    from padis_plugin.kspace import fft2c

    n = 32
    images = np.stack([np.ones((n, n)), 1j * np.ones((n, n))]).astype(np.complex64)
    monkeypatch.setattr(prep, "espirit_maps", lambda ksp, *a, **k: np.zeros(ksp.shape, np.complex64))
    with pytest.raises(DataError, match=r"ESPIRiT found no coil sensitivities from a 16-line calibration block "
                                        r"\(maps zero on 100% of the image\): use a wider --acs"):
        prep.prepare_slice(fft2c(images).astype(np.complex64), n, whiten=False, acs=16)
