"""Simulated MRF data: reference TSMI off the matching grid, the SNR definition, seeded noise, the padis-mrf-1 file
(round trip, clean errors, atomic writes), problems consistent with their operator, and ``padis-simulate --mrf``."""
from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import torch

from padis_plugin.cli.simulate import main
from padis_plugin.errors import ConfigError, DataError
from padis_plugin.mrf.dictionary import MRFDictionary, match_image, tissue_grid
from padis_plugin.mrf.epg import simulate_fisp
from padis_plugin.mrf.files import MRFFile, simulate_mrf_file, write_mrf_file
from padis_plugin.mrf.maps import save_maps_npz
from padis_plugin.mrf.phantom import mrf_phantom
from padis_plugin.mrf.sequence import jiang_fisp
from padis_plugin.mrf.simulate import MRFSetup, reference_tsmi, simulate_item

pytestmark = pytest.mark.usefixtures("one_thread")

SETUP = MRFSetup(matrix=32, frames=24, samples=64, interleaves=24, rank=5, atoms=400, snr_db=30.0)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    """Dictionaries cached in one temporary folder of the session, never in the user's cache."""
    monkeypatch.setenv("PADIS_CACHE", str(tmp_path_factory.getbasetemp() / "padis_cache"))


@pytest.fixture(scope="module")
def parts():
    seq, traj = SETUP.sequence(), SETUP.trajectory()
    d = MRFDictionary.build(seq, SETUP.rank, tissue_grid(target_atoms=SETUP.atoms))
    return seq, traj, d.basis, mrf_phantom(32, seed=1)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _mape(est, ref, mask):
    return float(np.mean(np.abs(est[mask] - ref[mask]) / ref[mask]))


def test_reference_tsmi_is_pd_times_compressed_exact_fingerprint(parts):
    seq, _, basis, maps = parts
    x = reference_tsmi(maps, seq, basis)
    assert x.shape == (5, 32, 32) and x.dtype == torch.complex64
    assert bool((x[:, ~torch.from_numpy(maps.mask)] == 0).all())
    for h, w in np.argwhere(maps.mask)[[0, 77, -1]]:
        s = simulate_fisp(seq, [float(maps.t1[h, w])], [float(maps.t2[h, w])])[0].to(torch.complex128)
        want = complex(maps.pd[h, w]) * (basis.to(torch.complex128).conj() @ s)
        torch.testing.assert_close(x[:, h, w].to(torch.complex128), want, rtol=1e-5, atol=1e-7)


def test_snr_definition_and_seeded_noise(parts):
    seq, traj, basis, maps = parts
    clean, _ = simulate_item(maps, seq, basis, traj, math.inf, _gen(0))
    noisy, _ = simulate_item(maps, seq, basis, traj, 20.0, _gen(0))
    assert noisy.shape == (1, 24, 64) and noisy.dtype == torch.complex64
    rms = float(clean.abs().square().mean().sqrt())
    sd = float((noisy - clean).abs().square().mean().sqrt())           # complex noise SD, E|n|^2 = sigma^2
    assert abs(sd / (rms * 10 ** (-20 / 20)) - 1) < 0.1
    n = noisy - clean                                                   # white: equal real / imaginary power
    assert abs(float(n.real.std() / n.imag.std()) - 1) < 0.1
    again, _ = simulate_item(maps, seq, basis, traj, 20.0, _gen(0))
    other, _ = simulate_item(maps, seq, basis, traj, 20.0, _gen(1))
    assert torch.equal(again, noisy) and not torch.equal(other, noisy)


def test_matching_the_reference_gives_the_maps_back(parts):
    """The data are off-grid: a fine dictionary over the phantom's range recovers T1 / T2 within 2 % MAPE.

    48 frames, not 24: the first 24 TRs (0.33 s, flip angles below 13 degrees) hardly encode T2 (measured: T2 MAPE
    6.5 % on this grid, 25 % in the fat of the scalp ring; T1 0.4 %)."""
    maps = parts[3]
    seq = jiang_fisp(48)
    d = MRFDictionary.build(seq, 5, tissue_grid((0.3, 5.0), (0.05, 2.5), n_t1=140, n_t2=140))
    x = reference_tsmi(maps, seq, d.basis)
    res = match_image(d, x, torch.from_numpy(maps.mask))
    for name in ("t1", "t2"):
        assert _mape(getattr(res, name).numpy(), getattr(maps, name), maps.mask) < 0.02, name
    assert _mape(np.abs(res.pd.numpy()), np.abs(maps.pd), maps.mask) < 0.02


def _write(path, parts, snr_db=30.0, ids=("a:0", "b:1")):
    seq, traj, basis, maps = parts
    setup = MRFSetup(**{**SETUP.to_dict(), "snr_db": snr_db})
    items = []
    for k, item_id in enumerate(ids):
        ksp, _ = simulate_item(maps, seq, basis, traj, snr_db, _gen(k))
        items.append((item_id, f"p{k}", "T1", maps, ksp, k))
    write_mrf_file(path, setup, seq, traj, items, basis=basis, progress=False)
    return items


def test_file_round_trip_and_filters(parts, tmp_path):
    seq, traj, basis, maps = parts
    items = _write(tmp_path / "m.h5", parts)
    f = MRFFile(tmp_path / "m.h5")
    assert f.ids == ["a:0", "b:1"] and f.setup == SETUP and f.sequence == seq
    np.testing.assert_array_equal(f.trajectory.points, traj.points)
    np.testing.assert_array_equal(f.trajectory.dcf, traj.dcf)
    np.testing.assert_array_equal(f.trajectory.angles, traj.angles)
    assert (f.trajectory.interleaves, f.trajectory.order) == (traj.interleaves, traj.order)
    for item_id, patient, contrast, m, ksp, seed in items:
        assert f.meta(item_id) == {"id": item_id, "patient": patient, "contrast": contrast, "seed": seed}
        assert torch.equal(f.kspace(item_id), ksp)
        back = f.maps(item_id)
        for key in ("t1", "t2", "pd", "mask", "tissue"):
            np.testing.assert_array_equal(getattr(back, key), getattr(m, key))
    assert MRFFile(tmp_path / "m.h5", patients=["p1"]).ids == ["b:1"]
    assert MRFFile(tmp_path / "m.h5", ids=["a:0"]).ids == ["a:0"]
    with pytest.raises(DataError, match="no item"):
        MRFFile(tmp_path / "m.h5", ids=["zz"])
    with pytest.raises(DataError, match="no item"):
        f.maps("zz")


def test_noiseless_problem_is_consistent_with_its_operator(parts, tmp_path):
    _write(tmp_path / "m.h5", parts, snr_db=math.inf)
    f = MRFFile(tmp_path / "m.h5")
    p = f.problem("b:1")
    assert p.y.shape == (1, 1, 24, 64) and p.x_ref.shape == (1, 5, 32, 32)
    assert p.physics.dictionary is not None and len(p.physics.dictionary) > 300
    assert float((p.physics.A(p.x_ref) - p.y).norm() / p.y.norm()) < 1e-4
    assert p.info.extra["maps"].t1.shape == (32, 32) and p.info.pattern.shape == (32, 32)
    torch.testing.assert_close(p.x_ref[0], reference_tsmi(parts[3], parts[0], parts[2]))


@pytest.mark.parametrize("damage, message", [
    ("text", "not a readable HDF5"), ("format", "not a padis-mrf-1"), ("dcf", "missing dataset 'trajectory/dcf'"),
    ("kspace", "items/a:0/kspace' has shape"), ("setup", "attribute 'setup'")])
def test_bad_files_give_clean_errors(parts, tmp_path, damage, message):
    path = tmp_path / "m.h5"
    if damage == "text":
        path.write_text("not hdf5")
    else:
        _write(path, parts)
        with h5py.File(path, "a") as f:
            if damage == "format":
                f.attrs["format"] = "other"
            elif damage == "dcf":
                del f["trajectory/dcf"]
            elif damage == "kspace":
                del f["items/a:0/kspace"]
                f["items/a:0/kspace"] = np.zeros((1, 24, 63), np.complex64)
            else:
                f.attrs["setup"] = '{"matrix": 3}'
    with pytest.raises(DataError, match="m.h5") as e:
        MRFFile(path)
    assert message in str(e.value)


def test_failed_write_leaves_nothing(parts, tmp_path):
    seq, traj, basis, maps = parts
    ksp, _ = simulate_item(maps, seq, basis, traj, 30.0, _gen(0))
    bad = [("a", "p", "T1", maps, ksp, 0), ("a", "p", "T1", maps, ksp, 1)]        # duplicate id
    with pytest.raises(DataError, match="given twice"):
        write_mrf_file(tmp_path / "m.h5", SETUP, seq, traj, bad, progress=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match="snr_db"):
        MRFSetup(snr_db="loud")
    with pytest.raises(ConfigError, match="matrix"):
        MRFSetup(matrix=4)
    assert MRFSetup.from_dict(SETUP.to_dict()) == SETUP


def test_simulate_mrf_file_seeds_every_item(parts, tmp_path):
    maps = parts[3]
    entries = [("x", "p", "T1", maps, 5)]
    simulate_mrf_file(tmp_path / "a.h5", SETUP, entries, progress=False)
    simulate_mrf_file(tmp_path / "b.h5", SETUP, entries, progress=False)
    a, b = MRFFile(tmp_path / "a.h5"), MRFFile(tmp_path / "b.h5")
    assert torch.equal(a.kspace("x"), b.kspace("x"))
    torch.testing.assert_close(a.basis, a.dictionary().basis)


def _cli(argv, capsys):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def test_cli_mrf_end_to_end_and_bad_maps(tmp_path, capsys):
    maps = [mrf_phantom(16, seed=s) for s in (0, 1)]
    save_maps_npz(tmp_path / "maps.npz", maps)
    opts = ["--matrix", 32, "--frames", 24, "--samples", 64, "--interleaves", 24, "--atoms", 400, "--no-progress"]
    code, cap = _cli(["--mrf", tmp_path / "maps.npz", "--out", tmp_path / "mrf.h5", *opts], capsys)
    assert code == 0 and "mrf.h5: 2 MRF item(s)" in cap.out
    f = MRFFile(tmp_path / "mrf.h5")
    assert f.ids == ["maps:0", "maps:1"] and f.setup.snr_db == 40.0 and f.setup.matrix == 32
    assert f.maps("maps:1").t1.shape == (32, 32)
    code, cap = _cli(["--mrf", tmp_path / "maps.npz", "--out", tmp_path / "mrf.h5", *opts], capsys)
    assert code == 2 and "exists" in cap.err                            # no silent overwrite
    bad = {"t1": maps[0].t1, "t2": maps[0].t1 * 2, "pd": maps[0].pd, "mask": maps[0].mask}   # T2 > T1
    np.savez(tmp_path / "bad.npz", **bad)
    code, cap = _cli(["--mrf", tmp_path / "bad.npz", "--out", tmp_path / "bad.h5", *opts], capsys)
    assert code == 2 and cap.err.startswith("error: ") and cap.err.count("\n") == 1 and "bad.npz" in cap.err
    assert not (tmp_path / "bad.h5").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz", "maps.npz", "mrf.h5"]
    code, cap = _cli(["--mrf-phantom", "--out", tmp_path / "ph.h5", *opts, "--snr-db", "inf"], capsys)
    assert code == 0 and MRFFile(tmp_path / "ph.h5").ids == ["phantom:0"]
    with pytest.raises(SystemExit) as e:
        main(["--mrf-phantom", "--mrf", str(tmp_path / "maps.npz"), "--out", str(tmp_path / "x.h5")])
    assert e.value.code == 2


def test_make_mrf_data_script_on_the_bundled_slices(tmp_path, capsys):
    """scripts/make_mrf_data.py: val / test MRF files and a training file padis-train reads, each training TSMI
    scaled to a 99th-percentile voxel norm of 1 (the scale stored)."""
    import importlib.util
    from pathlib import Path

    from padis_plugin.data.bundled import bundled_path
    from padis_plugin.data.simulate import slice_seed
    from padis_plugin.mrf.maps import maps_for_split
    from padis_plugin.prior.channels import real_channels_to_complex
    from padis_plugin.train.data import load_training_images

    script = Path(__file__).resolve().parents[1] / "scripts" / "make_mrf_data.py"
    spec = importlib.util.spec_from_file_location("make_mrf_data", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    src = bundled_path("brain_demo_slices.h5")
    (tmp_path / "split.yaml").write_text("train_pool: [patient12]\nval: [sub-29]\ntest: [sub-30]\n")
    out = tmp_path / "out"
    argv = ["--source", src, "--split", tmp_path / "split.yaml", "--out", out, "--matrix", 32, "--frames", 24,
            "--samples", 64, "--interleaves", 24, "--atoms", 400, "--no-progress"]
    assert module.main([str(a) for a in argv]) == 0
    assert capsys.readouterr().out.count("per slice") == 3
    val = MRFFile(out / "val.h5")
    assert len(val.ids) == 1 and val.meta(val.ids[0])["patient"] == "sub-29"
    assert val.meta(val.ids[0])["seed"] == slice_seed(0, val.ids[0]) and val.meta(val.ids[0])["contrast"] == "T1w"
    assert MRFFile(out / "test.h5").meta(MRFFile(out / "test.h5").ids[0])["patient"] == "sub-30"
    train = load_training_images(out / "train_tsmi.npz")
    assert train.images.shape == (3, 10, 32, 32) and train.patients == ["patient12"]
    with np.load(out / "train_tsmi.npz", allow_pickle=False) as z:
        scale = z["scale"]
    x = real_channels_to_complex(train.images)
    setup = MRFSetup(matrix=32, frames=24, samples=64, interleaves=24, atoms=400)
    basis = MRFFile(out / "val.h5").dictionary().basis
    for k, (item_id, _, maps) in enumerate(maps_for_split(src, tmp_path / "split.yaml", "train_pool", size=32)):
        assert item_id == train.ids[k]
        norms = x[k].abs().square().sum(0).sqrt()[torch.from_numpy(maps.mask)]
        assert float(np.percentile(norms.numpy(), 99)) == pytest.approx(1.0, rel=1e-5)
        torch.testing.assert_close(x[k] * float(scale[k]), reference_tsmi(maps, setup.sequence(), basis),
                                   rtol=1e-4, atol=1e-6)
    assert module.main([str(a) for a in argv]) == 2                   # no silent overwrite
