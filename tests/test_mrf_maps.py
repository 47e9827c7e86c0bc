"""Quantitative maps for MRF: the analytic phantom, maps from the bundled brain slices, the split reader, and the
npz files users bring (every bad input a DataError naming the file and the key)."""
from __future__ import annotations

from functools import lru_cache

import h5py
import numpy as np
import pytest

from padis_plugin.data.bundled import bundled_path
from padis_plugin.errors import ConfigError, DataError
from padis_plugin.mrf.maps import (JITTER, LABELS, T1_RANGE, T2_RANGE, TISSUES, QuantitativeMaps, draw_jitter,
                                   load_maps_npz, maps_for_split, maps_from_magnitude, save_maps_npz)
from padis_plugin.mrf.phantom import mrf_phantom
from padis_plugin.mrf.segmentation import resample


def assert_valid(m: QuantitativeMaps):
    """What every map relies on: T2 < T1 and both in the dictionary's range inside the mask, zeros outside."""
    assert m.mask.any()
    assert m.t1.dtype == np.float32 and m.t2.dtype == np.float32 and m.pd.dtype == np.complex64
    t1, t2 = m.t1[m.mask], m.t2[m.mask]
    assert np.all(t2 < t1)
    assert T1_RANGE[0] <= t1.min() and t1.max() <= T1_RANGE[1]
    assert T2_RANGE[0] <= t2.min() and t2.max() <= T2_RANGE[1]
    assert not m.t1[~m.mask].any() and not m.t2[~m.mask].any() and not m.pd[~m.mask].any()


# ------------------------------------------------------------------------------------------ phantom

def test_phantom_is_valid_and_has_every_tissue():
    m = mrf_phantom(32, seed=0)
    assert_valid(m)
    assert m.t1.shape == (32, 32)
    assert set(np.unique(m.tissue[m.mask])) == {1, 2, 3, 4}
    assert np.abs(np.angle(m.pd[m.mask])).max() <= np.pi / 4 + 1e-6


def test_phantom_without_variation_has_literature_values_in_pure_voxels():
    m = mrf_phantom(64, seed=0, vary=False)
    for name in ("csf", "gm", "wm", "other"):
        sel = m.tissue == LABELS[name]
        pure = np.isclose(m.t1[sel], TISSUES[name][0], rtol=1e-6) & np.isclose(m.t2[sel], TISSUES[name][1], rtol=1e-6)
        assert pure.mean() > 0.3, name         # the interiors; edge voxels mix the rates
        # PD is scaled by the tissue fraction (edges against the background are lower), never above the value
        assert np.abs(m.pd[sel][pure]).max() == pytest.approx(TISSUES[name][2], rel=1e-6)
    assert np.all(np.angle(m.pd[m.mask]) == 0)
    assert np.abs(m.pd).max() <= max(t[2] for t in TISSUES.values()) + 1e-6


def test_phantom_is_deterministic_for_a_seed():
    a, b, c = mrf_phantom(24, seed=5), mrf_phantom(24, seed=5), mrf_phantom(24, seed=6)
    assert np.array_equal(a.t1, b.t1) and np.array_equal(a.pd, b.pd)
    assert not np.array_equal(a.t1, c.t1)


@pytest.mark.parametrize("size", [4, 32.0, True, "32"])
def test_phantom_refuses_bad_size(size):
    with pytest.raises(ConfigError, match="size"):
        mrf_phantom(size)


# ------------------------------------------------------------------------------------------ real slices

@lru_cache(maxsize=None)
def _bundled():
    with h5py.File(bundled_path("brain_demo_slices.h5"), "r") as f:
        return [(name, ds[()].astype(np.float32), str(ds.attrs["contrast"]), not bool(ds.attrs["skull_stripped"]))
                for name, ds in f["slices"].items()]


@lru_cache(maxsize=None)
def _maps(i: int, seed: int = 0) -> QuantitativeMaps:
    _, image, contrast, scalp = _bundled()[i]
    return maps_from_magnitude(image, contrast, np.random.default_rng(seed), scalp=scalp, size=64)


def test_bundled_slices_cover_the_three_contrasts():
    assert {c.upper() for _, _, c, _ in _bundled()} == {"T1W", "T2W", "FLAIR"}


@pytest.mark.parametrize("i", range(5))
def test_maps_from_bundled_slice_order_tissues(i):
    m = _maps(i)
    assert_valid(m)
    sizes = {k: (m.tissue == LABELS[k]).sum() for k in ("csf", "gm", "wm")}
    assert min(sizes.values()) >= 0.01 * m.mask.sum(), sizes
    t1 = {k: m.t1[m.tissue == LABELS[k]].mean() for k in sizes}
    t2 = {k: m.t2[m.tissue == LABELS[k]].mean() for k in sizes}
    assert t1["csf"] > t1["gm"] > t1["wm"]
    assert t2["csf"] > t2["gm"] > t2["wm"]
    assert np.array_equal(m.wm, m.tissue == LABELS["wm"]) and np.array_equal(m.gm, m.tissue == LABELS["gm"])


@pytest.mark.parametrize("i", range(5))
def test_mask_covers_the_head(i):
    _, image, _, _ = _bundled()[i]
    from padis_plugin.mrf.segmentation import square

    img = resample(square(image.astype(np.float64)), (64, 64))
    bright = img > 0.2 * np.percentile(img, 99)
    m = _maps(i)
    assert m.mask[bright].mean() > 0.9              # the head's signal is inside the mask
    assert (img[m.mask] < 0.02 * np.percentile(img, 99)).mean() < 0.05   # little empty background in it


def test_skull_slices_label_the_scalp_other_at_the_rim():
    i = next(k for k, s in enumerate(_bundled()) if s[3])
    m = _maps(i)
    other = m.tissue == LABELS["other"]
    assert other.sum() > 0.05 * m.mask.sum()
    from scipy import ndimage
    depth = ndimage.distance_transform_edt(m.mask)
    assert np.median(depth[other]) < np.median(depth[m.mask & ~other])   # outside the brain, not in it


def test_maps_are_deterministic_for_a_seed():
    _, image, contrast, scalp = _bundled()[0]
    a = maps_from_magnitude(image, contrast, np.random.default_rng(3), scalp=scalp, size=64)
    b = _maps(0, seed=3)
    assert np.array_equal(a.t1, b.t1) and np.array_equal(a.t2, b.t2) and np.array_equal(a.pd, b.pd)
    assert not np.array_equal(a.t1, _maps(0, seed=4).t1)


def test_jitter_scales_the_tissue_values_by_the_factors():
    _, image, contrast, scalp = _bundled()[3]
    ones = np.ones((4, 2))
    base = maps_from_magnitude(image, contrast, np.random.default_rng(0), jitter=ones, scalp=scalp, size=64)
    up = maps_from_magnitude(image, contrast, np.random.default_rng(0), jitter=1.1 * ones, scalp=scalp, size=64)
    keep = base.mask & (base.t1 < 0.9 * T1_RANGE[1])                      # away from the clip
    assert np.allclose(up.t1[keep] / base.t1[keep], 1.1, rtol=1e-5)
    assert np.allclose(up.t2[keep] / base.t2[keep], 1.1, rtol=1e-5)


def test_drawn_jitter_is_about_ten_percent():
    logs = np.log([draw_jitter(np.random.default_rng(s)) for s in range(2000)])
    assert logs.std() == pytest.approx(JITTER, rel=0.05)
    assert abs(logs.mean()) < 0.01
    assert logs.shape == (2000, 4, 2)


def test_unknown_contrast_is_refused():
    with pytest.raises(ConfigError, match="PD"):
        maps_from_magnitude(_bundled()[0][1], "PD", np.random.default_rng(0))


# ------------------------------------------------------------------------------------------ the split reader

def _collection(path, names):
    """A small collection file (slices/ group, native images halved) holding the bundled slices ``names``."""
    with h5py.File(bundled_path("brain_demo_slices.h5"), "r") as src, h5py.File(path, "w") as out:
        for name in names:
            ds = src["slices"][name]
            new = out.create_dataset(f"slices/{name}", data=ds[()].astype(np.float32)[::2, ::2])
            new.attrs.update(dict(ds.attrs))
    return path


def test_maps_for_split_is_stable_per_patient(tmp_path):
    names = [s[0] for s in _bundled()]
    t1w = [n for n in names if "patient12" in n and "T1W" in n] + [n for n in names if "sub-29" in n]
    src = _collection(tmp_path / "c.h5", t1w + [n for n in names if "patient12" in n and "FLAIR" in n])
    (tmp_path / "split.yaml").write_text("train_pool: [sub-29]\nval: [patient12]\ntest: [patient12, sub-29]\n")
    val = maps_for_split(src, tmp_path / "split.yaml", "val", size=32)
    test = maps_for_split(src, tmp_path / "split.yaml", "test", size=32)
    assert [p for _, p, _ in val] == ["patient12", "patient12"]
    assert [i for i, _, _ in test] == sorted(i for i, _, _ in test) and len(test) == 3
    by_id = {i: m for i, _, m in test}
    for i, _, m in val:   # the same maps whichever other patients are read
        assert m.t1.shape == (32, 32)
        assert np.array_equal(m.t1, by_id[i].t1) and np.array_equal(m.pd, by_id[i].pd)
    with pytest.raises(ConfigError, match="nope"):
        maps_for_split(src, tmp_path / "split.yaml", "nope")


# ------------------------------------------------------------------------------------------ npz files

def test_npz_round_trip(tmp_path):
    maps = [mrf_phantom(16, seed=0), mrf_phantom(16, seed=1)]
    path = tmp_path / "maps"                       # no suffix: written to exactly this name
    save_maps_npz(path, maps)
    assert [p.name for p in tmp_path.iterdir()] == ["maps"]
    back = load_maps_npz(path)
    for a, b in zip(maps, back):
        for key in ("t1", "t2", "pd", "mask", "tissue"):
            assert np.array_equal(getattr(a, key), getattr(b, key)), key


def test_npz_single_slice_real_pd_default_mask(tmp_path):
    m = mrf_phantom(16, seed=0)
    pd = np.abs(m.pd)
    pd[0, 0] = 0.05 * pd.max()                    # below 10% of the max: outside the default mask
    t1, t2 = m.t1.copy(), m.t2.copy()
    t1[0, 0], t2[0, 0] = 1.0, 0.1
    np.savez(tmp_path / "one.npz", t1=t1, t2=t2, pd=pd)
    (back,) = load_maps_npz(tmp_path / "one.npz")
    assert back.pd.dtype == np.complex64 and not np.imag(back.pd).any()
    assert np.array_equal(back.mask, pd > 0.1 * pd.max())
    assert back.t1[0, 0] == 0 and back.tissue is None


@pytest.mark.parametrize("matrix", [11, 24, (20, 12)])
def test_npz_resampling_keeps_ranges(tmp_path, matrix):
    m = mrf_phantom(16, seed=2)
    save_maps_npz(tmp_path / "m.npz", m)
    (r,) = load_maps_npz(tmp_path / "m.npz", matrix=matrix)
    assert r.t1.shape == ((matrix,) * 2 if np.isscalar(matrix) else matrix)
    assert r.mask.any() and np.all(r.t2[r.mask] <= r.t1[r.mask])
    for key in ("t1", "t2"):
        a, b = getattr(m, key)[m.mask], getattr(r, key)[r.mask]
        assert a.min() - 1e-6 <= b.min() and b.max() <= a.max() + 1e-6
    assert np.abs(r.pd).max() <= np.abs(m.pd).max() + 1e-6
    assert np.array_equal(load_maps_npz(tmp_path / "m.npz", matrix=16)[0].t1, m.t1)


def _good():
    m = mrf_phantom(8, seed=0)
    return {"t1": m.t1, "t2": m.t2, "pd": m.pd, "mask": m.mask}


def _with(**change):
    arrays = _good()
    arrays.update(change)
    return {k: v for k, v in arrays.items() if v is not None}


def _set(key, index, value):
    a = _good()[key].copy()
    a[index] = value
    return a


BAD = [  # (name, arrays to save, key the message must name)
    ("missing t1", _with(t1=None), "t1"),
    ("missing pd", _with(pd=None), "pd"),
    ("nan t2", _with(t2=_set("t2", (4, 4), np.nan)), "t2"),
    ("inf pd", _with(pd=_set("pd", (4, 4), np.inf)), "pd"),
    ("t1 zero in mask", _with(t1=_set("t1", (4, 4), 0.0)), "t1"),
    ("t2 negative in mask", _with(t2=_set("t2", (4, 4), -0.05)), "t2"),
    ("t2 above t1", _with(t2=_set("t2", (4, 4), 5.0)), "t2"),
    ("pd shape", _with(pd=np.ones((8, 9), np.complex64)), "pd"),
    ("mask shape", _with(mask=np.ones((2, 8, 8), bool)), "mask"),
    ("t1 1-D", _with(t1=np.ones(8, np.float32)), "t1"),
    ("t1 4-D", _with(t1=np.ones((1, 1, 8, 8), np.float32)), "t1"),
    ("object t2", _with(t2=np.array([[1.0, None]] * 2, dtype=object)), "t2"),
    ("string t1", _with(t1=np.array([["a", "b"]] * 2)), "t1"),
    ("mask not boolean", _with(mask=_good()["mask"] * 2), "mask"),
    ("empty mask", _with(mask=np.zeros((8, 8), bool)), "mask"),
    ("no mask, t1 zero where pd != 0", _with(mask=None, t1=_set("t1", (4, 4), 0.0)), "t1"),
]


@pytest.mark.parametrize("name,arrays,key", BAD, ids=[b[0] for b in BAD])
def test_npz_bad_input_names_file_and_key(tmp_path, name, arrays, key):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError) as e:
        load_maps_npz(path)
    assert str(path) in str(e.value) and f"'{key}'" in str(e.value), str(e.value)


@pytest.mark.parametrize("content", ["text", "npy", "missing"])
def test_npz_not_an_archive_names_the_file(tmp_path, content):
    path = tmp_path / "x.npz"
    if content == "text":
        path.write_text("not an archive")
    elif content == "npy":
        with open(path, "wb") as f:
            np.save(f, np.ones((4, 4)))
    with pytest.raises(DataError, match="x.npz"):
        load_maps_npz(path)


def test_failed_save_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        save_maps_npz(tmp_path / "m.npz", [mrf_phantom(8), mrf_phantom(16)])   # shapes differ: np.stack fails
    assert list(tmp_path.iterdir()) == []


def test_maps_need_one_shape_and_labels_for_tissue_masks():
    m = mrf_phantom(8)
    with pytest.raises(DataError, match="shape"):
        QuantitativeMaps(m.t1, m.t2[:4], m.pd, m.mask)
    with pytest.raises(DataError, match="labels"):
        QuantitativeMaps(m.t1, m.t2, m.pd, m.mask).wm


@pytest.mark.parametrize("shape", [(5, 7), (40, 3)])
def test_resample_keeps_constants(shape):
    assert np.allclose(resample(np.full((12, 12), 2.5), shape), 2.5)
