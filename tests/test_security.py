"""Security as promised in the README (issue 15): no pickle is ever loaded, whatever a file's name says, and
the shipped priors load and run with the network switched off."""
from __future__ import annotations

import json
import shutil
import socket

import numpy as np
import pytest
import torch

from padis_plugin.checkpoints import checkpoint_paths
from padis_plugin.data.files import load_npy, sha256_file
from padis_plugin.errors import PadisError
from padis_plugin.prior import load_prior
from padis_plugin.prior.denoiser import BUNDLED_CHECKPOINTS

SHIPPED = sorted(p.stem for p in BUNDLED_CHECKPOINTS.glob("*.json"))


class _Payload:
    """Unpickling this runs code: it writes a marker file. A loader that unpickles is caught by the marker."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("rehash", [False, True], ids=["hash-unchanged", "hash-forged-to-match"])
def test_a_pickle_disguised_as_safetensors_is_refused_before_any_code_runs(tmp_path, tiny_checkpoints, rehash):
    stem = tmp_path / "evil"
    src_st, src_js = checkpoint_paths(tiny_checkpoints["padis"])
    st, js = checkpoint_paths(stem)
    shutil.copy(src_js, js)
    marker = tmp_path / "pwned"
    torch.save({"net": _Payload(marker)}, st)            # a torch.save (pickle) file under the safetensors name
    if rehash:                                           # an attacker who also edits the JSON's hash
        cfg = json.loads(js.read_text())
        cfg["checkpoint"]["sha256"] = sha256_file(st)
        js.write_text(json.dumps(cfg))
    with pytest.raises(PadisError, match="evil.safetensors"):
        load_prior(stem)
    assert not marker.exists()


def test_an_object_array_npy_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "mask.npy"
    np.save(path, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(PadisError, match="mask.npy"):
        load_npy(path)
    assert not marker.exists()


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access at run time")

    for name in ("connect", "connect_ex", "sendto"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_prior_loads_and_denoises_with_the_network_off(name, no_network):
    prior = load_prior(name)
    mrf = name.startswith("mrf-")                           # MR-fingerprinting priors: 10 channels at 128
    grid = int(name.rsplit("-", 1)[1]) if name.count("-") == 2 and not mrf else 128
    size = 64 if name.startswith(("padis", "mrf-padis")) else grid   # a patch prior runs on any grid; EDM: its own
    x = torch.zeros(1, 10 if mrf else 2, size, size)
    with torch.no_grad():
        out = prior(x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)), 0.1)
    assert out.shape == x.shape and bool(torch.isfinite(out).all())
