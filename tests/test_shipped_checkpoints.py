"""The priors shipped in the package: each loads by name, stays small enough for the repo, records its
provenance, and is a trained denoiser (it cleans a noisy brain slice it never saw), not random weights."""
from __future__ import annotations

import json
import re

import pytest
import torch

from padis_plugin.metrics import image_metrics
from padis_plugin.prior import EDMDenoiser, PaDISDenoiser, load_prior
from padis_plugin.prior.denoiser import BUNDLED_CHECKPOINTS
from padis_plugin.prior.hfs import HFSDenoiser, PatchHFSDenoiser, high_pass

pytestmark = pytest.mark.usefixtures("one_thread")

SHIPPED = sorted(p.stem for p in BUNDLED_CHECKPOINTS.glob("*.json"))
MAX_BYTES = 15_000_000


def test_the_shipped_set():
    assert {"padis-s25", "edm-s25", "padis-s100", "edm-s100"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_loads_by_name_and_denoises(name, slice_factory):
    config = json.loads((BUNDLED_CHECKPOINTS / f"{name}.json").read_text())
    assert (BUNDLED_CHECKPOINTS / f"{name}.safetensors").stat().st_size < MAX_BYTES
    assert config["shipped_name"] == name and config["weights"] == "EMA, fp16"
    assert config["training"]["step"] == config["training"]["steps"] > 0
    # names: <kind>-s<S> (128 protocol) or <kind>-s<S>-<N> (trained on the N x N protocol)
    match = re.fullmatch(r"(padis|edm|hfs|patch-hfs)-s(\d+)(?:-(\d+))?", name)
    assert match, f"{name}: not a <kind>-s<S>[-<N>] name"
    kind, size, grid = match.group(1), int(match.group(2)), int(match.group(3) or 128)
    assert config["kind"] == kind
    assert config["data"]["num_slices"] == size and len(config["data"]["ids"]) == size
    prior = load_prior(name)
    assert type(prior) is {"padis": PaDISDenoiser, "edm": EDMDenoiser, "hfs": HFSDenoiser,
                           "patch-hfs": PatchHFSDenoiser}[kind]

    # a slice on the prior's grid simulated from a bundled test-patient brain (never in any training set)
    x = torch.view_as_real(torch.from_numpy(slice_factory(n=grid).reference))[None].permute(0, 3, 1, 2).float()
    g = torch.Generator().manual_seed(0)
    sigma = 0.1
    noise = sigma * torch.randn(x.shape, generator=g)
    if kind in ("hfs", "patch-hfs"):  # trained on x0 + sigma Q n: noise only in the high band
        noise = high_pass(noise, prior.band_for(grid))
    noisy = x + noise
    with torch.no_grad():
        clean = prior(noisy, sigma, generator=g)
    before, after = image_metrics(noisy, x)["psnr"], image_metrics(clean, x)["psnr"]
    assert after > before + 5, f"{name}: {before:.1f} -> {after:.1f} dB"
