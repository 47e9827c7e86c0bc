"""Checkpoints: exact round trip, fp16 export, Adam state round trip, clear errors on bad files."""
import json

import pytest
import torch

from padis_plugin.checkpoints import (get_group, load_checkpoint, load_state_into, optimizer_state_from_tensors,
                                      optimizer_state_to_tensors, save_checkpoint)
from padis_plugin.errors import CheckpointError


def small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))


def test_roundtrip_is_bitwise_exact(tmp_path):
    m = small_model()
    groups = {"model": m.state_dict(), "extra": {"ints": torch.arange(5), "half": torch.randn(3).half(),
                                                 "scalar": torch.tensor(2.5)}}
    config = {"kind": "padis", "model": {"name": "x", "channel_mult": [1, 2]}, "seed": 3}
    save_checkpoint(tmp_path / "ck", groups, config)
    back, cfg = load_checkpoint(tmp_path / "ck.safetensors")
    assert cfg == config
    for g, tensors in groups.items():
        assert set(back[g]) == set(tensors)
        for k, t in tensors.items():
            assert back[g][k].dtype == t.dtype and torch.equal(back[g][k], t)
    m2 = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    load_state_into(m2, back["model"], tmp_path / "ck.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))


def test_fp16_export_loads(tmp_path):
    m = small_model()
    save_checkpoint(tmp_path / "w", {"ema": m.state_dict()}, {"kind": "padis"}, fp16=True)
    groups, _ = load_checkpoint(tmp_path / "w")
    assert groups["ema"]["0.weight"].dtype == torch.float16
    assert groups["ema"]["1.num_batches_tracked"].dtype == torch.int64
    m2 = small_model()
    with torch.no_grad():
        for p in m2.parameters():
            p.zero_()
    load_state_into(m2, groups["ema"])
    assert m2[0].weight.dtype == torch.float32
    assert torch.allclose(m2[0].weight, m[0].weight, atol=1e-3)


def test_adam_state_roundtrip_is_exact(tmp_path):
    def steps(model, opt, n):
        for i in range(n):
            opt.zero_grad()
            model(torch.full((2, 3), float(i + 1))).pow(2).sum().backward()
            opt.step()

    m = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2, betas=(0.8, 0.99))
    steps(m, opt, 3)
    tensors, meta = optimizer_state_to_tensors(opt.state_dict())
    save_checkpoint(tmp_path / "o", {"model": m.state_dict(), "optim": tensors}, {"optim": meta})
    groups, cfg = load_checkpoint(tmp_path / "o")
    m2 = torch.nn.Linear(3, 2)
    load_state_into(m2, groups["model"])
    opt2 = torch.optim.Adam(m2.parameters(), lr=0.5)
    opt2.load_state_dict(optimizer_state_from_tensors(groups["optim"], cfg["optim"]))
    assert opt2.param_groups[0]["betas"] == (0.8, 0.99) and opt2.param_groups[0]["lr"] == 1e-2
    steps(m, opt, 2)
    steps(m2, opt2, 2)
    assert torch.equal(m.weight, m2.weight) and torch.equal(m.bias, m2.bias)


def test_bad_checkpoints_raise_checkpoint_error(tmp_path):
    m = small_model()
    st = save_checkpoint(tmp_path / "ck", {"model": m.state_dict()}, {"kind": "padis"})
    data = st.read_bytes()
    st.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CheckpointError, match="ck.safetensors"):
        load_checkpoint(tmp_path / "ck")
    with pytest.raises(CheckpointError, match="ck.safetensors"):
        load_checkpoint(tmp_path / "ck", verify=False)
    st.write_bytes(b"\xff" * 64)  # garbage
    with pytest.raises(CheckpointError, match="ck.safetensors"):
        load_checkpoint(tmp_path / "ck", verify=False)
    with pytest.raises(CheckpointError, match="nothere.json"):
        load_checkpoint(tmp_path / "nothere")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="bad.json"):
        load_checkpoint(tmp_path / "bad")

    st = save_checkpoint(tmp_path / "ok", {"model": m.state_dict()}, {"kind": "padis"})
    groups, _ = load_checkpoint(st)
    with pytest.raises(CheckpointError, match="ok.safetensors.*'ema'"):
        get_group(groups, "ema", st)
    wrong = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.BatchNorm1d(5), torch.nn.Linear(5, 2))
    with pytest.raises(CheckpointError, match="ok.safetensors.*shape mismatch"):
        load_state_into(wrong, groups["model"], st)
    with pytest.raises(CheckpointError, match="missing"):
        load_state_into(torch.nn.Linear(3, 4), groups["model"], st)
    st.unlink()
    with pytest.raises(CheckpointError, match="ok.safetensors"):
        load_checkpoint(tmp_path / "ok.json")
    assert json.loads((tmp_path / "ok.json").read_text())["kind"] == "padis"
