"""Priors on any even number C of image channels (C = 10: five complex MRF subspace images): the channel layout,
model configs with ``image_channels`` (absent at 2, so 2-channel configs read and hash as before), EDM / PaDIS /
HFS denoisers on (B, 10, H, W), image-array training files, and 10-channel training that resumes exactly."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from padis_plugin.checkpoints import load_checkpoint, load_state_into, read_checkpoint_config
from padis_plugin.config import from_dict
from padis_plugin.errors import ConfigError, DataError
from padis_plugin.prior import (EDMDenoiser, EDMPrecond, HFSDenoiser, PaDISDenoiser, build_unet,
                                complex_to_real_channels, high_pass, load_prior, real_channels_to_complex)
from padis_plugin.prior.denoiser import BUNDLED_CHECKPOINTS
from padis_plugin.prior.network import resolve_model_config
from padis_plugin.train import TrainConfig, load_training_images, train
from padis_plugin.train.image_arrays import read_image_arrays, write_image_arrays

pytestmark = pytest.mark.usefixtures("one_thread")

C, N = 10, 16


def _json(obj):
    """``obj`` as stored in a checkpoint JSON (tuples become lists)."""
    return json.loads(json.dumps(obj))


def _digest(model_config: dict) -> str:
    return hashlib.sha256(json.dumps(_json(model_config), sort_keys=True).encode()).hexdigest()


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------ layout
def test_complex_layout_is_interleaved_and_two_channels_unchanged():
    z = torch.randn(2, 5, 4, 3, dtype=torch.complex64, generator=_gen(0))
    x = complex_to_real_channels(z)
    assert x.shape == (2, 10, 4, 3) and x.dtype == torch.float32
    for k in range(5):
        assert torch.equal(x[:, 2 * k], z[:, k].real) and torch.equal(x[:, 2 * k + 1], z[:, k].imag)
    assert torch.equal(real_channels_to_complex(x), z)
    one = z[:, :1]   # K = 1: what the 2-channel denoisers have always done with a complex (B, 1, H, W) image
    assert torch.equal(complex_to_real_channels(one), torch.view_as_real(one[:, 0]).permute(0, 3, 1, 2))


# ------------------------------------------------------------------------------------------ model configs
def test_image_channels_in_model_configs():
    edm, padis = resolve_model_config("edm-tiny", image_channels=C), resolve_model_config("padis-tiny", image_channels=C)
    assert (edm["in_channels"], edm["out_channels"], edm["image_channels"]) == (C, C, C)
    assert (padis["in_channels"], padis["out_channels"], padis["image_channels"]) == (C + 2, C, C)
    assert resolve_model_config(_json(padis)) == padis                    # a saved config reads back as it was
    assert resolve_model_config("padis-tiny", image_channels=2) == resolve_model_config("padis-tiny")
    assert "image_channels" not in resolve_model_config("padis-tiny", image_channels=2)
    for bad in (3, 0, True, "10"):
        with pytest.raises(ConfigError, match="'image_channels' must be an even integer"):
            resolve_model_config("edm-tiny", image_channels=bad)
    with pytest.raises(ConfigError, match="'out_channels' = 2 must equal 'image_channels' = 10"):
        resolve_model_config("edm-tiny", image_channels=C, out_channels=2)


def test_two_channel_configs_are_unchanged():
    """Every shipped checkpoint's model config resolves to itself with the same hash, and the 2-channel ones (all but
    the 10-channel MR-fingerprinting priors, mrf-*) carry no image_channels key; the named config a shipped prior was
    trained from still resolves to its JSON."""
    shipped = sorted(BUNDLED_CHECKPOINTS.glob("*.json"))
    assert shipped
    for path in shipped:
        model = read_checkpoint_config(path)["model"]
        assert ("image_channels" in model) == path.name.startswith("mrf-"), path.name
        assert _digest(resolve_model_config(model)) == _digest(model), path.name
    padis = read_checkpoint_config(BUNDLED_CHECKPOINTS / "padis-s25.json")["model"]
    assert _json(resolve_model_config("padis-small")) == padis


# ------------------------------------------------------------------------------------------------ denoisers
def _denoisers():
    torch.manual_seed(0)
    edm = EDMDenoiser(EDMPrecond(build_unet(resolve_model_config("edm-tiny", image_channels=C))))
    padis = PaDISDenoiser(EDMPrecond(build_unet(resolve_model_config("padis-tiny", image_channels=C))), patch_size=8,
                          pad=4)
    hfs = HFSDenoiser(edm.precond, band_width=3, keep_low_band=True)
    return {"edm": edm, "padis": padis, "hfs": hfs}


@pytest.mark.parametrize("name", ["edm", "padis", "hfs"])
def test_ten_channel_denoisers(name):
    den = _denoisers()[name]
    assert den.precond.image_channels == C and den.config["model"]["image_channels"] == C
    x = torch.randn(2, C, N, N, generator=_gen(1))
    with torch.no_grad():
        out = den(x, 0.7, generator=_gen(2))
        out_complex = den(real_channels_to_complex(x), 0.7, generator=_gen(2))
        near_zero = den(x, 1e-6, generator=_gen(2))
        odd = den(x[..., :15, :15], 0.7, generator=_gen(2))   # padded with a noisy band of C channels, cropped
    assert out.shape == x.shape and torch.isfinite(out).all() and odd.shape == (2, C, 15, 15)
    assert out_complex.shape == (2, C // 2, N, N) and torch.equal(out_complex, real_channels_to_complex(out))
    assert torch.allclose(near_zero, x, atol=1e-5)     # EDM preconditioning: D(x, sigma -> 0) = x
    with pytest.raises(ConfigError, match=r"expected \(B, 10, H, W\)"):
        den(x[:, :2], 0.7)
    with pytest.raises(ConfigError, match=r"complex input must be \(B, 5, H, W\)"):
        den(real_channels_to_complex(x[:, :2]), 0.7)


def test_hfs_band_filter_acts_on_each_complex_image():
    x = torch.randn(2, C, N, N, generator=_gen(3))
    per_image = torch.cat([high_pass(x[:, k:k + 2], 3) for k in range(0, C, 2)], dim=1)
    assert torch.allclose(high_pass(x, 3), per_image, atol=1e-6)
    out = _denoisers()["hfs"](x, 0.5)                  # keep_low_band: the output's low band is the input's
    assert torch.allclose(out - high_pass(out, 3), x - high_pass(x, 3), atol=1e-5)


# ------------------------------------------------------------------------------------------- training data
def _images(n=6, channels=C, seed=0):
    return np.random.default_rng(seed).standard_normal((n, channels, N, N)).astype(np.float32) * 0.5


@pytest.fixture(scope="module")
def arrays(tmp_path_factory):
    path = tmp_path_factory.mktemp("tsmi") / "tsmi.npz"
    ids = [f"s{i}" for i in range(6)]
    return write_image_arrays(path, _images(), ids=ids, patient_ids=[f"p{i // 2}" for i in range(6)])


def test_image_array_files(arrays, tmp_path):
    npz = read_image_arrays(arrays)
    h5 = read_image_arrays(write_image_arrays(tmp_path / "tsmi.h5", npz.images, npz.ids, npz.patient_ids))
    assert np.array_equal(npz.images, _images()) and np.array_equal(h5.images, npz.images)
    assert h5.ids == npz.ids == [f"s{i}" for i in range(6)] and h5.patient_ids == npz.patient_ids
    data = load_training_images(tmp_path / "tsmi.h5", num_slices=3, seed=1)
    assert data.images.shape == (3, C, N, N) and data.patients == ["p0", "p1", "p2"]   # one image per subject
    assert torch.equal(data.images, torch.from_numpy(npz.images[[npz.ids.index(i) for i in data.ids]]))
    assert load_training_images(arrays, num_slices=3, seed=1).ids == data.ids
    assert read_image_arrays(write_image_arrays(tmp_path / "bare.npz", _images(2))).ids == ["0", "1"]
    bad = _images(2)
    bad[0, 0, 0, 0] = np.nan
    for images, match in ((_images(2, channels=3), "even number of channels"), (bad, "non-finite"),
                          (_images(2)[:, :, :, :8], "square")):
        with pytest.raises(DataError, match=match):
            write_image_arrays(tmp_path / "bad.npz", images)
    np.savez(tmp_path / "objects.npz", images=_images(2), ids=np.array(["a", 1], dtype=object))
    with pytest.raises(DataError, match="objects.npz"):
        read_image_arrays(tmp_path / "objects.npz")
    with pytest.raises(ConfigError, match="data.contrasts"):
        load_training_images(arrays, contrasts=["T2"])


# ---------------------------------------------------------------------------------------------- training
def _cfg(path, kind="padis", steps=4, channels=C, **run) -> TrainConfig:
    overrides = {"dropout": 0.1} if channels == 2 else {"dropout": 0.1, "image_channels": channels}
    return from_dict(TrainConfig, {
        "kind": kind, "model": {"name": f"{kind}-tiny", "overrides": overrides},
        "data": {"path": str(path), "num_slices": 4, "seed": 0},
        "patch": {"sizes": [8, 16], "probs": [0.5, 0.5], "batch": [8, 4]},
        "optim": {"lr": 2e-3, "warmup_steps": 2},
        "run": {"steps": steps, "batch": 2, "checkpoint_every": 100, "progress": False, "seed": 3, **run}},
        source="<test>")


def test_ten_channel_padis_prior_trains_and_resumes_exactly(arrays, tmp_path):
    """4 steps in one go == 2 steps, then resumed to 4: the same tensor file, byte for byte (weights, EMA, Adam,
    every random state; dropout on, so torch's global RNG is restored too). The resumed run also draws 10-channel
    previews, which leave the training streams alone."""
    train(_cfg(arrays, steps=4), tmp_path / "a")
    previews = dict(sample_every=1, sample_steps=2, sample_size=N)
    train(_cfg(arrays, steps=2, **previews), tmp_path / "b")
    train(_cfg(arrays, steps=4, **previews), tmp_path / "b", resume=True)
    assert (tmp_path / "b" / "samples" / "step0000004.png").is_file()
    stem = "checkpoints/ckpt_step0000004"
    a, b = (tmp_path / run / f"{stem}.safetensors" for run in "ab")
    assert a.read_bytes() == b.read_bytes()
    groups, config = load_checkpoint(tmp_path / "a" / stem)
    assert config["model"]["image_channels"] == C and config["model"]["in_channels"] == C + 2
    assert not all(torch.equal(groups["model"][k], groups["ema"][k]) for k in groups["model"])   # it trained


def test_ten_channel_edm_checkpoint_reloads_by_path(arrays, tmp_path):
    result = train(_cfg(arrays, kind="edm", steps=2), tmp_path / "edm")
    groups, config = load_checkpoint(result["checkpoint"])
    assert config["model"]["image_channels"] == C
    prior = load_prior(result["checkpoint"])
    assert isinstance(prior, EDMDenoiser) and prior.precond.image_channels == C
    unet = build_unet(config["model"])
    load_state_into(unet, groups["ema"])
    x = torch.randn(1, C, N, N, generator=_gen(4))
    with torch.no_grad():
        assert torch.equal(prior(x, 0.5), EDMDenoiser(EDMPrecond(unet.eval()))(x, 0.5))


def test_image_channels_are_checked_against_the_data(arrays, tmp_path):
    with pytest.raises(ConfigError, match=r"tsmi\.npz.*10 channels.*'model\.overrides\.image_channels' is 2"):
        train(_cfg(arrays, channels=2), tmp_path / "o")
    two = write_image_arrays(tmp_path / "two.npz", _images(channels=2))
    with pytest.raises(ConfigError, match="2 channels.*'model.overrides.image_channels' is 10"):
        train(_cfg(two), tmp_path / "o")
    with pytest.raises(ConfigError, match="'model.name'.*kind 'edm' needs 10 / 10"):
        from_dict(TrainConfig, {"kind": "edm", "data": {"path": str(arrays)},
                                "model": {"name": "padis-tiny", "overrides": {"image_channels": C}}}, source="<t>")
    result = train(_cfg(two, steps=1, channels=2), tmp_path / "two")   # a 2-channel run: no image_channels key
    model = read_checkpoint_config(result["checkpoint"])["model"]
    assert "image_channels" not in model and _digest(model) == _digest(resolve_model_config("padis-tiny",
                                                                                            dropout=0.1))
