"""open_source: one way to a prepared dataset, with a cache that never serves a changed source stale."""
import os
import warnings

import numpy as np
import pytest
from skimage.data import shepp_logan_phantom
from skimage.transform import resize

from padis_plugin.data import bundled, prepare as prep
from padis_plugin.data.fastmri_format import write_fastmri_h5
from padis_plugin.data.simulate import simulate_slice
from padis_plugin.data.source import BUNDLED_DEMO, cache_key, open_source, prepared_path
from padis_plugin.errors import DataError

N = 64


def write_source(path, seed):
    image = resize(shepp_logan_phantom(), (40, 40), order=1, anti_aliasing=True, preserve_range=True)
    kspace = simulate_slice(np.pad(image, 12), 3, snr_db=30, seed=seed)
    return write_fastmri_h5(path, kspace[None], acquisition="AXT1", patient_id="p1")


def later(path, seconds=1):
    """``touch``: move the modification time on by ``seconds`` (coarse file-system clocks cannot hide it)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + int(seconds * 1e9)))


def open_raw(src, cache):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", prep.BackgroundSignalWarning)  # the default 30 x 30 corner meets the head
        return open_source(src, size=N, cache_dir=cache)


def test_rewritten_source_is_prepared_again(tmp_path, monkeypatch):
    src, cache = write_source(tmp_path / "vol_AXT1.h5", seed=0), tmp_path / "cache"
    first = open_raw(src, cache)
    assert first.ids == ["vol_AXT1:0"] and first.size == N and first.path.parent == cache / "prepared"
    old = first[0].kspace

    write_source(src, seed=1)  # same shape and byte count, other noise
    later(src)
    second = open_raw(src, cache)
    assert second.path != first.path
    assert not np.array_equal(second[0].kspace, old)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", prep.BackgroundSignalWarning)
        fresh = prep.prepare(src, tmp_path / "fresh.h5", size=N, cache=False, progress=False)
    np.testing.assert_array_equal(second[0].kspace, open_source(fresh)[0].kspace)

    monkeypatch.setattr(prep, "prepare", lambda *a, **k: pytest.fail("prepared again although unchanged"))
    assert open_raw(src, cache).path == second.path


def test_cache_key_follows_source_files_and_settings(tmp_path):
    folder = tmp_path / "raw"
    src = write_source(folder / "vol_AXT1.h5", seed=0)
    settings = {"size": N, "slices": "centre", "contrasts": None}
    file_key, folder_key = cache_key(src, settings), cache_key(folder, settings)
    assert cache_key(src, dict(settings)) == file_key  # deterministic
    assert cache_key(src, {**settings, "size": 32}) != file_key
    assert cache_key(src, {**settings, "slices": "all"}) != file_key
    assert cache_key(src, {**settings, "contrasts": ["T1"]}) != file_key
    later(src)  # touched only: the folder's own mtime does not change, its file's does
    assert cache_key(src, settings) != file_key and cache_key(folder, settings) != folder_key
    (folder / "notes.txt").write_text("not k-space")
    key = cache_key(folder, settings)
    write_source(folder / "vol2_AXT1.h5", seed=1)  # a new volume in the folder
    assert cache_key(folder, settings) != key


def test_prepared_files_and_the_demo_pass_through(tmp_path, monkeypatch):
    src = write_source(tmp_path / "vol_AXT1.h5", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", prep.BackgroundSignalWarning)
        prepared = prep.prepare(src, tmp_path / "p.h5", size=N, cache=False, progress=False)
    assert prepared_path(prepared, cache_dir=tmp_path / "unused") == prepared
    assert not (tmp_path / "unused").exists()
    assert open_source(prepared, patients=["nobody"]).ids == []  # filters apply
    with pytest.raises(DataError, match="padis-prepare"):
        open_source(src, size=None)  # raw data is refused where no grid size is given
    with pytest.raises(DataError, match="dataset not found"):
        open_source(tmp_path / "missing.h5")
    monkeypatch.setattr(bundled, "demo_dataset", lambda cache_dir=None, progress=False: prepared)
    assert prepared_path(BUNDLED_DEMO, cache_dir=tmp_path) == prepared
