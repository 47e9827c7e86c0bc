"""Importing the published EDM-style ``network-snapshot.pkl`` priors: nothing in the file runs, every tensor maps,
and the imported prior equals the published network's forward (the contract of ``padis-import``)."""
from __future__ import annotations

import os
import pickle

import pytest
import torch

import snapshot_format as sf
from padis_plugin import import_published, load_prior
from padis_plugin.checkpoints import load_checkpoint, read_checkpoint_config
from padis_plugin.cli.import_published import main as import_main
from padis_plugin.errors import CheckpointError
from padis_plugin.prior.denoiser import EDMDenoiser, PaDISDenoiser
from padis_plugin.prior.patches import patch_positions

SIGMAS = [0.002, 0.05, 0.5, 3.0, 80.0]


@pytest.fixture(scope="module")
def padis_pkl(tmp_path_factory):
    net = sf.tiny_padis()
    path = sf.write_snapshot(tmp_path_factory.mktemp("pub") / "network-snapshot-000100.pkl", net)
    return path, net


@pytest.fixture(scope="module")
def edm_pkl(tmp_path_factory):
    net = sf.tiny_edm()
    path = sf.write_snapshot(tmp_path_factory.mktemp("pub") / "network-snapshot-000050.pkl", net, protocol=2)
    return path, net


def _outputs(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".pkl"))


def test_round_trip_every_tensor_bit_for_bit(padis_pkl, edm_pkl, tmp_path):
    for (pkl, net), stem in ((padis_pkl, tmp_path / "padis"), (edm_pkl, tmp_path / "edm")):
        import_published(pkl, out=stem)
        groups, config = load_checkpoint(stem)
        ours = groups["model"]
        published = sf.published_tensors(net)
        assert len(ours) == len(published)
        for name, t in published.items():
            assert name.startswith("model.")
            assert torch.equal(ours["net." + name[len("model."):]], t), name
        assert config["published"]["source"] == pkl.name and len(config["published"]["sha256"]) == 64


@pytest.mark.parametrize("sigma", SIGMAS)
def test_padis_contract_equals_published_forward(padis_pkl, tmp_path, sigma):
    pkl, net = padis_pkl
    stem = tmp_path / "padis"
    import_published(pkl, out=stem)
    prior = load_prior(stem)
    assert isinstance(prior, PaDISDenoiser) and prior.position_convention == "published"
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 2, 16, 16, generator=g) * (0.5 + sigma)
    pos = patch_positions(torch.tensor([0, 16, 40]), torch.tensor([8, 0, 24]), 16, (64, 64), "published",
                          canvas_pad=16)
    want = sf.reference_forward(net, x, sigma, pos)
    with torch.no_grad():
        got = prior.precond(x, sigma, pos)
    assert (got - want).abs().max() <= 1e-5 * want.std()


@pytest.mark.parametrize("sigma", SIGMAS)
def test_edm_contract_equals_published_forward(edm_pkl, tmp_path, sigma):
    pkl, net = edm_pkl
    stem = tmp_path / "edm"
    import_published(pkl, out=stem)
    prior = load_prior(stem)
    assert isinstance(prior, EDMDenoiser)
    assert prior.precond.unet.config["resample"] == "bilinear" and prior.precond.unet.config["group_norm"] == "edm"
    x = torch.randn(2, 2, 32, 32, generator=torch.Generator().manual_seed(4)) * (0.5 + sigma)
    want = sf.reference_forward(net, x, sigma, yamin=True)
    with torch.no_grad():
        got = prior.precond(x, sigma)
    assert (got - want).abs().max() <= 1e-5 * want.std()


def test_box_resampling_edm_and_group_rule_matter(tmp_path):
    """Without the bilinear flag the box filter is imported; the reference with EDM's GroupNorm rule differs from
    deepinv's 32 groups at 32 channels, so the contract above really checks the group count."""
    net = sf.tiny_edm(yamin=False)
    pkl = sf.write_snapshot(tmp_path / "s.pkl", net)
    import_published(pkl, out=tmp_path / "edm")
    prior = load_prior(tmp_path / "edm")
    assert "resample" not in prior.precond.unet.config
    x = torch.randn(1, 2, 32, 32, generator=torch.Generator().manual_seed(5))
    want = sf.reference_forward(net, x, 1.0)
    with torch.no_grad():
        assert (prior.precond(x, 1.0) - want).abs().max() <= 1e-5 * want.std()
        for m in prior.precond.unet.modules():
            if isinstance(m, torch.nn.GroupNorm):
                m.num_groups = 32
        assert (prior.precond(x, 1.0) - want).abs().max() > 1e-3 * want.std()


def test_imported_prior_runs_in_a_solver(padis_pkl, tmp_path, slice_factory):
    from padis_plugin import build_solver, cartesian_mask, slice_problem

    pkl, _ = padis_pkl
    import_published(pkl, out=tmp_path / "padis")
    y, physics, _ = slice_problem(slice_factory(32), cartesian_mask(32, 4, acs_lines=8, seed=0))
    solver = build_solver("padis-dds", {"checkpoint": str(tmp_path / "padis"), "steps": 2, "patch_size": 16,
                                        "pad": 16, "progress": False})
    x = solver(y, physics, generator=torch.Generator().manual_seed(0))
    assert x.shape == (1, 2, 32, 32) and torch.isfinite(x).all()


def test_module_source_never_runs(tmp_path):
    marker = tmp_path / "MARKER"
    src = f"open({str(marker)!r}, 'w').write('ran')\nimport os\nos.system('touch {marker}')\n"
    b = sf.Builder(0, module_src=src)
    net = sf.precond(b, sf.songunet(b, img_resolution=16, in_channels=4, out_channels=2, model_channels=32,
                                    channel_mult=(1,), num_blocks=1), patch=True)
    pkl = sf.write_snapshot(tmp_path / "s.pkl", net)
    import_published(pkl, out=tmp_path / "ok")
    assert not marker.exists()
    assert (tmp_path / "ok.json").is_file()


class _Evil:
    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _bad_files(tmp_path, good_bytes):
    evil = _Evil()
    evil.marker = tmp_path / "PWNED"
    files = {
        "forbidden global": (pickle.dumps({"ema": evil}), "refuses global 'posix.system'"),
        "eval": (pickle.dumps({"x": (eval, ("1",))}),  # a function object pickles by its name
                 "refuses global 'builtins.eval'"),
        "truncated": (good_bytes[: len(good_bytes) // 2], "not a readable pickle"),
        "no network": (pickle.dumps({"loss_fn": None, "augment_pipe": None}), "holds no network"),
    }
    return files, evil.marker


def test_bad_files_are_one_clean_line_and_write_nothing(padis_pkl, tmp_path, capsys):
    files, marker = _bad_files(tmp_path, padis_pkl[0].read_bytes())
    for name, (data, message) in files.items():
        src = tmp_path / f"{name.replace(' ', '_')}.pkl"
        src.write_bytes(data)
        assert import_main([str(src), "--out", str(tmp_path / "out")]) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: {src}: ") and message in err, (name, err)
        assert _outputs(tmp_path) == [], name
    assert not marker.exists()


@pytest.mark.parametrize("case, message", [
    ("residual", "unsupported SongUNet option encoder_type='residual' (the 'ncsnpp' arch)"),
    ("missing", "does not map onto ours: missing 'enc.16x16_block0.conv1.bias'"),
    ("extra", "does not map onto ours: unused 'enc.16x16_block0.conv1.extra'"),
    ("dhariwal", "model 'DhariwalUNet'"),
    ("vp", "network class 'VPPrecond' is not supported"),
])
def test_unsupported_networks_are_refused(tmp_path, capsys, case, message):
    net = sf.tiny_padis(img_resolution=16, channel_mult=(1,))
    block = net.model.enc["16x16_block0"]
    if case == "residual":
        net.model._init_kwargs["encoder_type"] = "residual"
    elif case == "missing":
        block.conv1.bias = None
    elif case == "extra":
        block.conv1.register_buffer("extra", torch.zeros(3))
    elif case == "dhariwal":
        net.model.__class__ = sf.persistent_class("DhariwalUNet")
    elif case == "vp":
        net.__class__ = sf.persistent_class("VPPrecond")
    pkl = sf.write_snapshot(tmp_path / "s.pkl", net)
    assert import_main([str(pkl), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert _outputs(tmp_path) == []


def test_cli_writes_and_refuses_to_overwrite(padis_pkl, tmp_path, capsys):
    pkl, _ = padis_pkl
    out = tmp_path / "mine"
    assert import_main([str(pkl), "--out", str(out)]) == 0
    assert "kind padis, Patch_EDMPrecond" in capsys.readouterr().out
    before = (tmp_path / "mine.safetensors").read_bytes()
    assert import_main([str(pkl), "--out", str(out)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert import_main([str(pkl), "--out", str(out), "--overwrite"]) == 0
    assert (tmp_path / "mine.safetensors").read_bytes() == before
    cfg = read_checkpoint_config(out)
    assert cfg["kind"] == "padis" and cfg["patch_size"] == 64 and cfg["pad"] == 64
    assert cfg["published"]["position_convention"] == "published"
    assert cfg["published"]["init_kwargs"]["model_type"] == "SongUNet"


def test_default_stem_beside_the_pickle(padis_pkl):
    pkl, _ = padis_pkl
    path = import_published(pkl, overwrite=True)
    assert path == pkl.with_suffix(".safetensors") and pkl.with_suffix(".json").is_file()


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="no such snapshot file"):
        import_published(tmp_path / "nope.pkl")


def test_published_table5_config_runs_with_imported_stems(padis_pkl, edm_pkl, tmp_path, slice_factory):
    """The shipped ``published_table5_r7`` config names imported stems by path; with tiny imported priors, a tiny
    file and short chains (``--set``) it runs end to end in padis-bench."""
    import dataclasses
    import json

    from padis_plugin.cli.bench import main as bench_main
    from padis_plugin.data.prepared import write_prepared

    import_published(padis_pkl[0], out=tmp_path / "padis")
    import_published(edm_pkl[0], out=tmp_path / "edm")
    s = dataclasses.replace(slice_factory(32, coils=4, acs=8), id="v:0", contrast="T1", patient_id="p0")
    data = write_prepared(tmp_path / "tiny.h5", [s])
    sets = [f"data.path={data}", "device=cpu", "output.figures=false", "output.save_recons=false"]
    for i, stem in enumerate(["padis", "edm", "padis", "edm"]):
        sets.append(f"solvers.{i}.params.checkpoint={tmp_path / stem}")
        sets += [f"solvers.{i}.params.steps=2"] + ([f"solvers.{i}.params.inner=1"] if i < 2 else [])
        if stem == "padis":
            sets += [f"solvers.{i}.params.patch_size=16", f"solvers.{i}.params.pad=16"]
    args = ["--config", "published_table5_r7", "--out", str(tmp_path / "out"), "--no-progress"]
    assert bench_main(args + [a for kv in sets for a in ("--set", kv)]) == 0
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    assert {r["solver"] for r in rows} == {"PaDIS DPS", "EDM DPS", "PaDIS DDS-50", "EDM DDS-50", "Wavelet-L1",
                                           "Zero-filled"}
