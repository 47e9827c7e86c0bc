"""Training: subset selection, patch sampling, EDM loss, loss decrease, checkpoints, exact resume, errors, DDP."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from padis_plugin.checkpoints import load_checkpoint
from padis_plugin.cli.train import main as cli_main
from padis_plugin.config import from_dict, load_config
from padis_plugin.errors import CheckpointError, ConfigError, DataError
from padis_plugin.prior.patches import patch_positions
from padis_plugin.train import (EDMLoss, PatchEDMLoss, TrainConfig, load_training_images, read_log,
                                select_subset, train)
from padis_plugin.train.config import learning_rate
from padis_plugin.train.loop import Trainer

from helpers import make_train_dataset, train_cfg_dict

N = 32


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data_path(tmp_path_factory) -> Path:
    return make_train_dataset(tmp_path_factory.mktemp("train_data") / "prepared.h5")


def _cfg(data_path, kind="padis", steps=4, **sections) -> TrainConfig:
    return from_dict(TrainConfig, train_cfg_dict(data_path, kind, steps, **sections), source="<test>")


# ------------------------------------------------------------------------------------------------ data
def test_subset_is_seeded_and_one_slice_per_patient():
    meta = [{"id": f"p{p}:{s}", "patient_id": f"p{p}"} for p in range(6) for s in range(3)]
    a = select_subset(meta, 4, seed=1)
    assert a == select_subset(meta, 4, seed=1)
    assert len({i.split(":")[0] for i in a}) == 4                         # four different patients
    assert any(select_subset(meta, 4, seed=s) != a for s in range(2, 6))   # the seed matters
    b = select_subset(meta, 9, seed=1)                                    # more slices than patients
    assert len(set(b)) == 9 and len({i.split(":")[0] for i in b}) == 6
    assert select_subset(meta, None, seed=0) == sorted(m["id"] for m in meta)
    with pytest.raises(ConfigError, match="num_slices"):
        select_subset(meta, 19, seed=0)


def test_training_images_follow_filters(data_path):
    imgs = load_training_images(data_path, num_slices=2, seed=3, contrasts=["T2"])
    assert imgs.images.shape == (2, 2, N, N) and imgs.images.dtype == torch.float32
    assert {m["contrast"] for m in imgs.meta} == {"T2"} and len(imgs.patients) == 2
    pool = load_training_images(data_path, patients=["p1", "p3"])
    assert pool.patients == ["p1", "p3"] and len(pool.ids) == 4
    with pytest.raises(ConfigError):
        load_training_images(data_path, num_slices=3, contrasts=["T2"], patients=["p0"])
    with pytest.raises(DataError):
        load_training_images(data_path.parent / "missing.h5")


# ------------------------------------------------------------------------------------------------ loss
def test_patches_match_their_positional_channels():
    """Patch content and positional channels describe the same place (image convention), pad is zero."""
    H = W = 24
    rows, cols = torch.meshgrid(torch.arange(H) + 1.0, torch.arange(W) + 1.0, indexing="ij")
    images = torch.stack([rows, cols])[None].repeat(3, 1, 1, 1)
    loss = PatchEDMLoss(patch_sizes=[8], probs=[1.0], batch_sizes=[64])
    patches, pos = loss.sample_patches(images, 8, 64, torch.Generator().manual_seed(0))
    assert patches.shape == pos.shape == (64, 2, 8, 8)
    row_of = (pos[:, 1] + 1) * (H - 1) / 2            # image row each pixel's y coordinate names
    col_of = (pos[:, 0] + 1) * (W - 1) / 2
    inside = (row_of > -0.5) & (row_of < H - 0.5) & (col_of > -0.5) & (col_of < W - 0.5)
    assert torch.allclose(patches[:, 0][inside], row_of[inside] + 1, atol=1e-4)
    assert torch.allclose(patches[:, 1][inside], col_of[inside] + 1, atol=1e-4)
    assert (patches[:, :, ][inside[:, None].expand_as(patches).logical_not()] == 0).all()
    assert (~inside).any() and inside.any()           # both the image and the N/4 zero band are drawn
    assert torch.allclose(pos[:1], patch_positions(*_top_left(pos[0], H, W), 8, (H, W), canvas_pad=6))


def _top_left(pos, H, W):
    top = round(float((pos[1, 0, 0] + 1) * (H - 1) / 2)) + 6
    left = round(float((pos[0, 0, 0] + 1) * (W - 1) / 2)) + 6
    return top, left


def test_edm_loss_weight_and_reduction():
    """With D(x) = x the loss is lambda(sigma) sigma^2 |n|^2: its mean / (lambda sigma^2) is 2 H W (sum reduction)."""
    images = torch.zeros(512, 2, 4, 4)
    g = torch.Generator().manual_seed(0)
    seen = {}

    def identity(x, sigma, pos=None):
        seen["sigma"] = sigma
        return x

    losses = EDMLoss()(identity, images, g)
    sigma = seen["sigma"]
    lam = (sigma ** 2 + 0.25) / (0.5 * sigma) ** 2
    ratio = (losses / (lam * sigma ** 2)).mean()
    assert abs(float(ratio) - 32) < 1.0
    assert abs(float(sigma.log().mean()) + 1.2) < 0.2 and abs(float(sigma.log().std()) - 1.2) < 0.2


def test_learning_rate_warmup_ends():
    cfg = TrainConfig()
    cfg.optim.warmup_steps, cfg.optim.lr = 10, 1e-4
    assert learning_rate(0, cfg.optim, 100) == pytest.approx(1e-5)
    assert learning_rate(9, cfg.optim, 100) == learning_rate(50, cfg.optim, 100) == pytest.approx(1e-4)
    cfg.optim.schedule = "cosine"
    assert learning_rate(99, cfg.optim, 100) < 1e-6


# ------------------------------------------------------------------------------------------------ training
def test_training_lowers_the_loss(data_path, tmp_path):
    """30 steps of padis-tiny: the loss on a fixed batch of patches (fixed sigmas and noise) drops."""
    cfg = _cfg(data_path, steps=30, patch={"sizes": [8], "probs": [1.0], "batch": [16]})
    trainer = Trainer(cfg, tmp_path / "run")

    def fixed_loss(net):
        with torch.no_grad():
            return float(trainer.loss_fn(net, trainer.images, torch.Generator().manual_seed(123), patch_size=8,
                                         n=128).mean())

    before = fixed_loss(trainer.net)
    trainer.run()
    after, after_ema = fixed_loss(trainer.net), fixed_loss(trainer.ema)
    losses = [r["loss"] for r in read_log(tmp_path / "run")]
    assert len(losses) == 30 and all(np.isfinite(losses))
    assert after < 0.6 * before and after_ema < 0.6 * before, (before, after, after_ema)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_checkpoint_is_exact_and_loads_as_a_prior(data_path, tmp_path):
    from padis_plugin.prior import EDMDenoiser, PaDISDenoiser, load_prior

    for kind, cls in (("padis", PaDISDenoiser), ("edm", EDMDenoiser)):
        trainer = Trainer(_cfg(data_path, kind, steps=2), tmp_path / kind)
        trainer.run()
        stem = tmp_path / kind / "checkpoints" / "ckpt_step0000002"
        groups, config = load_checkpoint(stem)
        assert config["kind"] == kind and config["training"]["step"] == 2
        assert config["data"]["ids"] == trainer.data.ids and config["data"]["seed"] == 0
        for name, module in (("model", trainer.net.unet), ("ema", trainer.ema.unet)):
            state = module.state_dict()
            assert set(groups[name]) == set(state)
            assert all(torch.equal(groups[name][k], state[k]) for k in state)
        prior = load_prior(stem)
        assert isinstance(prior, cls)
        if kind == "padis":  # the training canvas is provenance; "published" inference spans N + 2M
            assert config["canvas_pad"] is None and config["patch_training"]["pad"] == trainer.pad
            assert prior.canvas_pad is None
        assert all(torch.equal(p, q) for p, q in zip(prior.precond.unet.parameters(), trainer.ema.unet.parameters()))
        with torch.no_grad():
            out = prior(torch.randn(1, 2, N, N, generator=torch.Generator().manual_seed(0)), 0.5,
                        generator=torch.Generator().manual_seed(1))
        assert out.shape == (1, 2, N, N) and torch.isfinite(out).all()


def test_interrupted_and_resumed_run_equals_uninterrupted(data_path, tmp_path):
    """6 steps in one go == 3 steps, SIGINT (checkpoint, KeyboardInterrupt), resume 3 more: bitwise."""
    over = {"model": {"overrides": {"dropout": 0.1}}}  # dropout: the global torch RNG must be restored too
    train(_cfg(data_path, steps=6, **over), tmp_path / "a")

    def interrupt_at_3(step, record):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)        # handled: finish the step, checkpoint, stop

    cfg_b = _cfg(data_path, steps=6, run={"sample_every": 2, "sample_steps": 2, "sample_size": 16}, **over)
    with pytest.raises(KeyboardInterrupt):
        train(cfg_b, tmp_path / "b", callback=interrupt_at_3)
    assert json.loads((tmp_path / "b" / "latest.json").read_text())["step"] == 3
    assert (tmp_path / "b" / "samples" / "step0000002.png").is_file()
    with pytest.raises(ConfigError, match="already holds"):
        train(cfg_b, tmp_path / "b")                    # no silent restart over an existing run
    train(cfg_b, tmp_path / "b", resume=True)

    ga, ca = load_checkpoint(tmp_path / "a" / "checkpoints" / "ckpt_step0000006")
    gb, cb = load_checkpoint(tmp_path / "b" / "checkpoints" / "ckpt_step0000006")
    for group in ("model", "ema", "optim", "rng"):
        assert set(ga[group]) == set(gb[group])
        assert all(torch.equal(ga[group][k], gb[group][k]) for k in ga[group]), group
    la, lb = read_log(tmp_path / "a"), read_log(tmp_path / "b")
    assert [r["step"] for r in lb] == list(range(1, 7))
    assert [(r["loss"], r["lr"], r["patch_size"]) for r in la] == [(r["loss"], r["lr"], r["patch_size"]) for r in lb]


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("override, key", [
    ("model.name=padis-huge", "model"),
    ("optim.lr=-1", "optim.lr"),
    ("patch.probs=[0.5, 0.6]", "patch.probs"),
    ("optim.lrr=1", "optim.lrr"),
    ("kind=edm", "model.name"),                  # a 4-channel PaDIS network cannot be a whole-image prior
    ("patch.sizes=[8, 9]", "patch.sizes.1"),      # not a multiple of the network's downsampling
])
def test_bad_config_values_name_the_key(data_path, tmp_path, override, key, capsys):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(train_cfg_dict(data_path)))
    with pytest.raises(ConfigError, match=f"cfg.yaml.*'{key}'"):
        load_config(TrainConfig, path, [override])
    assert cli_main(["--config", str(path), "--set", override, "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_data_problems_are_reported(data_path, tmp_path):
    with pytest.raises(ConfigError, match="num_slices"):
        train(_cfg(data_path, data={"num_slices": 99}), tmp_path / "o")
    with pytest.raises(DataError, match="not found"):
        train(_cfg(tmp_path / "nope.h5"), tmp_path / "o")


def test_resume_rejects_corrupt_or_mismatched_checkpoints(data_path, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train(_cfg(data_path, steps=2), out, resume=True)
    train(_cfg(data_path, steps=2), out)
    with pytest.raises(CheckpointError, match="does not match"):
        train(_cfg(data_path, steps=4, model={"overrides": {"model_channels": 64}}), out, resume=True)
    with pytest.raises(CheckpointError, match="other slices"):
        train(_cfg(data_path, steps=4, data={"seed": 5}), out, resume=True)
    st = out / "checkpoints" / "ckpt_step0000002.safetensors"
    st.write_bytes(st.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="ckpt_step0000002"):
        train(_cfg(data_path, steps=4), out, resume=True)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(train_cfg_dict(data_path, steps=4)))
    assert cli_main(["--config", str(path), "--out", str(out), "--resume"]) == 2
    assert "error: " in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ DDP
@pytest.mark.slow
def test_torchrun_two_processes_on_gloo(data_path, tmp_path):
    """The same CLI under torchrun: 2 CPU processes (gloo), rank 0 alone writes one log and the checkpoints."""
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(train_cfg_dict(data_path, steps=2)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "padis_plugin.cli.train", "--config", str(path), "--out", str(tmp_path / "ddp"), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == [
        "checkpoints", "latest.json", "resolved_config.yaml", "train_log.jsonl"]
    assert [r["step"] for r in read_log(tmp_path / "ddp")] == [1, 2]
    _, config = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "ckpt_step0000002")
    assert config["training"]["world_size"] == 2 and len(config["resume"]["rng"]) == 2


def test_loss_tenths_and_loss_curve_figure(tmp_path):
    from padis_plugin.bench.figures import loss_curves
    from padis_plugin.train.loop import loss_tenths

    log = [{"step": i + 1, "loss": float(l)} for i, l in enumerate([10.0] * 10 + [5.0] * 80 + [1.0] * 10)]
    assert loss_tenths(log) == {"first_tenth": 10.0, "middle_tenth": 5.0, "last_tenth": 1.0}
    png = tmp_path / "loss.png"
    loss_curves(png, {"a": ([r["step"] for r in log], [r["loss"] for r in log]), "b": ([1, 2], [3.0, 2.0])})
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_diverging_run_stops_with_one_error_and_keeps_its_checkpoints(tmp_path):
    """A loss that stays non-finite (poisoned images from step 2 on): the steps are skipped, the third in a row
    stops the run with TrainingDivergedError (the package's error type) and the checkpoints, whose weights are
    untouched by skipped steps, stay the resume point. Weights gone non-finite are never checkpointed."""
    from helpers import train_config
    from padis_plugin.train.loop import MAX_SKIPPED_IN_A_ROW, TrainingDivergedError

    cfg = load_config(TrainConfig, train_config(tmp_path, steps=8))
    trainer = Trainer(cfg, tmp_path / "run")

    def poison_images(step, record):
        if step == 2:
            trainer.images.fill_(float("nan"))

    with pytest.raises(TrainingDivergedError, match=r"step 5: the loss is nan .*3 steps in a row.*lower optim\.lr"):
        trainer.run(callback=poison_images)
    assert MAX_SKIPPED_IN_A_ROW == 3 and trainer.skipped == 3
    latest = json.loads((tmp_path / "run" / "latest.json").read_text())
    assert "0000004" in json.dumps(latest)
    groups, _ = load_checkpoint(tmp_path / "run" / "checkpoints" / "ckpt_step0000004")
    assert all(torch.isfinite(t).all() for t in groups["model"].values())

    trainer = Trainer(cfg, tmp_path / "run2")

    def poison_weights(step, record):
        if step == 2:
            with torch.no_grad():
                next(trainer.net.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingDivergedError, match=r"step 2: the weights are no longer finite"):
        trainer.run(callback=poison_weights)
    assert sorted(p.name for p in (tmp_path / "run2" / "checkpoints").glob("ckpt_step*.json")) == \
        ["ckpt_step0000001.json"]
    with pytest.raises(ConfigError, match=r"optim\.lr.* must be in \(0, 1\], got 1e\+300"):
        load_config(TrainConfig, train_config(tmp_path, steps=2), ["optim.lr=1e300"])
