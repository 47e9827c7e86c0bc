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

ALL_SHIPPED = sorted(p.stem for p in BUNDLED_CHECKPOINTS.glob("*.json"))
SHIPPED = [n for n in ALL_SHIPPED if not n.startswith("mrf-")]     # MRI image priors (2 channels)
SHIPPED_MRF = [n for n in ALL_SHIPPED if n.startswith("mrf-")]     # MR-fingerprinting TSMI priors (10 channels)
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


@pytest.mark.parametrize("name", SHIPPED_MRF)
def test_shipped_tsmi_prior_denoises_a_phantom_tsmi(name, tmp_path, monkeypatch):
    """mrf-<kind>-s: a 10-channel prior on the 128 x 128 MRF setup's TSMIs (scaled as the MRF solvers scale
    them), trained on the training pool's maps; it cleans the TSMI of an analytic phantom it never saw."""
    from padis_plugin.mrf.dictionary import MRFDictionary, tissue_grid
    from padis_plugin.mrf.phantom import mrf_phantom
    from padis_plugin.mrf.simulate import MRFSetup, reference_tsmi
    from padis_plugin.prior.channels import complex_to_real_channels

    monkeypatch.setenv("PADIS_CACHE", str(tmp_path))
    config = json.loads((BUNDLED_CHECKPOINTS / f"{name}.json").read_text())
    assert (BUNDLED_CHECKPOINTS / f"{name}.safetensors").stat().st_size < MAX_BYTES
    assert config["shipped_name"] == name and config["weights"] == "EMA, fp16"
    assert config["training"]["step"] == config["training"]["steps"] > 0
    kind = re.fullmatch(r"mrf-(padis|edm)-s", name).group(1)
    assert config["kind"] == kind and config["model"]["image_channels"] == 10
    prior = load_prior(name)
    setup = MRFSetup()
    d = MRFDictionary.build(setup.sequence(), setup.rank, tissue_grid(target_atoms=2000))
    maps = mrf_phantom(setup.matrix, seed=3)
    x = reference_tsmi(maps, setup.sequence(), d.basis)
    norms = torch.linalg.vector_norm(x, dim=0)[torch.from_numpy(maps.mask)]
    x = complex_to_real_channels((x / torch.quantile(norms, 0.99))[None]).float()
    g = torch.Generator().manual_seed(0)
    sigma = 0.1
    noisy = x + sigma * torch.randn(x.shape, generator=g)
    with torch.no_grad():
        clean = prior(noisy, sigma, generator=g) if kind == "padis" else prior(noisy, sigma)
    before, after = ((noisy - x).norm() / x.norm()).item(), ((clean - x).norm() / x.norm()).item()
    assert after < 0.7 * before, f"{name}: relative error {before:.3f} -> {after:.3f}"
