"""A checkpoint's JSON cannot lie about its family, its hash or its size (issue 33, points 2 and 4).

Each bad JSON is one :class:`CheckpointError` line naming the file (and, for a kind that disagrees with the
weights, both kinds) before a network is built; shipped checkpoints must carry their hash, a user's file without
one loads with one warning; model configs are bounded by :data:`~padis_plugin.prior.network.MODEL_LIMITS`, which
the paper's networks pass.
"""
from __future__ import annotations

import json
import re
import shutil
import warnings

import pytest
import torch

from padis_plugin.checkpoints import checkpoint_paths
from padis_plugin.config import load_config
from padis_plugin.errors import CheckpointError, ConfigError
from padis_plugin.prior import (FAMILIES, EDMDenoiser, EDMPrecond, HFSDenoiser, PaDISDenoiser, PatchHFSDenoiser,
                                build_unet, count_parameters, load_prior)
from padis_plugin.prior import denoiser as denoiser_module
from padis_plugin.prior.families import checkpoint_family
from padis_plugin.prior.network import MODEL_LIMITS, estimate_parameters, resolve_model_config
from padis_plugin.train.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = {"padis": PaDISDenoiser, "edm": EDMDenoiser, "hfs": HFSDenoiser, "patch-hfs": PatchHFSDenoiser}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict:
    """One tiny checkpoint per family (random weights): ``{kind: safetensors path}``."""
    d = tmp_path_factory.mktemp("kinds")
    torch.manual_seed(0)
    return {"padis": PaDISDenoiser(EDMPrecond(build_unet("padis-tiny")), patch_size=16, pad=4).save_pretrained(d / "p"),
            "edm": EDMDenoiser(EDMPrecond(build_unet("edm-tiny"))).save_pretrained(d / "e"),
            "hfs": HFSDenoiser(EDMPrecond(build_unet("edm-tiny")), band_width=4).save_pretrained(d / "h"),
            "patch-hfs": PatchHFSDenoiser(EDMPrecond(build_unet("padis-tiny")), patch_size=16, pad=4,
                                          band_width=4).save_pretrained(d / "ph")}


def _copy(src, dst_stem, edit=None):
    """Copy checkpoint ``src`` to ``dst_stem`` (.safetensors + .json), ``edit(config)`` applied to its JSON."""
    (st, js), (dst, djs) = checkpoint_paths(src), checkpoint_paths(dst_stem)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(st, dst)
    config = json.loads(js.read_text())
    if edit is not None:
        edit(config)
    djs.write_text(json.dumps(config))
    return dst


def _set(**changes):
    def edit(config):
        config.update(changes)
    return edit


def _drop(*keys):
    def edit(config):
        for k in keys:
            config.pop(k)
    return edit


def _model(**changes):
    def edit(config):
        config["model"].update(changes)
    return edit


def _both(*edits):
    def edit(config):
        for e in edits:
            e(config)
    return edit


# (case, weights of kind, JSON edit, regex the one-line message must match after "<file>: ")
BAD = [
    # the network's channels tell patch priors (C + 2 inputs) from whole-image ones (C inputs)
    ("padis-labelled-edm", "padis", _set(kind="edm"), r"kind 'edm' does not match its model config: 4 input "
     r"channels for 2 image channels is a network of kind 'padis', while kind 'edm' takes 2"),
    ("edm-labelled-padis", "edm", _set(kind="padis"), r"kind 'padis' does not match its model config: 2 input "
     r"channels for 2 image channels is a network of kind 'edm'"),
    ("patch-hfs-labelled-hfs", "patch-hfs", _set(kind="hfs"), r"kind 'hfs' does not match .* of kind 'patch-hfs'"),
    ("hfs-labelled-patch-hfs", "hfs", _set(kind="patch-hfs"), r"kind 'patch-hfs' does not match .* of kind 'hfs'"),
    # the JSON's model config edited to the label too: the tensors themselves still say what they are
    ("padis-tensors-labelled-edm", "padis", _both(_set(kind="edm"), _model(name="edm-tiny", in_channels=2)),
     r"kind 'edm' does not match its tensors: 4 input channels for 2 image channels is a network of kind 'padis'"),
    ("edm-tensors-labelled-padis", "edm", _both(_set(kind="padis", patch_size=16, pad=4),
                                               _model(name="padis-tiny", in_channels=4)),
     r"kind 'padis' does not match its tensors: 2 input channels .* of kind 'edm'"),
    # HFS networks are plain ones trained differently: the band settings in the JSON tell them apart
    ("padis-labelled-patch-hfs", "padis", _set(kind="patch-hfs"), r"kind 'patch-hfs' \(an HFS prior\) has no "
     r"'band_width' .*weights of kind 'padis' labelled 'patch-hfs'\?"),
    ("edm-labelled-hfs", "edm", _set(kind="hfs"), r"kind 'hfs' \(an HFS prior\) has no 'band_width' .*weights of "
     r"kind 'edm' labelled 'hfs'\?"),
    ("hfs-labelled-edm", "hfs", _set(kind="edm"), r"kind 'edm' has no high-frequency band, but its JSON holds "
     r"\['band_width', 'keep_low_band'\], the band of kind 'hfs'"),
    ("patch-hfs-labelled-padis", "patch-hfs", _set(kind="padis"), r"kind 'padis' has no high-frequency band.* "
     r"of kind 'patch-hfs'"),
    ("band-width-str", "hfs", _set(band_width="x"), r"checkpoint 'band_width' must be an integer >= 1 or null "
     r"\(the grid's default\), got str 'x'"),
    ("band-width-zero", "hfs", _set(band_width=0), r"'band_width' must be an integer >= 1 or null.*got int 0"),
    ("band-width-bool", "patch-hfs", _set(band_width=True), r"'band_width' must be an integer >= 1.*got bool True"),
    ("band-width-fraction", "hfs", _set(band_width=2.5), r"'band_width' must be an integer >= 1.*got float 2.5"),
    ("band-width-list", "hfs", _set(band_width=[4]), r"'band_width' must be an integer >= 1.*got list \[4\]"),
    ("keep-low-band-str", "hfs", _set(keep_low_band="no"), r"'keep_low_band' must be true or false, got 'no'"),
    # sizes: refused from the JSON, before anything is allocated (num_blocks 100000 took 8 GB and a minute)
    ("num-blocks-huge", "padis", _model(num_blocks=100000), r"invalid model config .*'num_blocks' = 100000 "
     r"exceeds the limit 16 \(padis_plugin\.prior\.network\.MODEL_LIMITS\['num_blocks'\]"),
    ("model-channels-huge", "edm", _model(model_channels=100000), r"'model_channels' = 100000 exceeds the limit 1,024"),
    ("channel-mult-levels", "edm", _model(channel_mult=[1] * 9), r"'channel_mult' with 9 levels exceeds the limit 8"),
    ("channel-mult-entry", "padis", _model(channel_mult=[1, 100]), r"'channel_mult' entry 100 exceeds the limit 16"),
    ("emb-mult-huge", "padis", _model(channel_mult_emb=10 ** 6), r"'channel_mult_emb' = 1000000 exceeds the limit 16"),
    ("parameters-huge", "edm", _model(model_channels=1024, channel_mult=[8, 8, 8], num_blocks=4),
     r"parameter count [\d,]+ \(model_channels=1024, channel_mult=\[8, 8, 8\], num_blocks=4\) exceeds the limit "
     r"1,000,000,000"),
]


def _refused(call, file_name: str, message: str) -> str:
    """``call()`` raises one CheckpointError line ``<.../file_name>: <message>`` (file_name a regex)."""
    with pytest.raises(CheckpointError) as info:
        call()
    text = str(info.value)
    assert "\n" not in text, text
    assert re.match(rf"(.*/)?{file_name}: .*{message}", text), text
    return text


@pytest.mark.parametrize("case,kind,edit,message", BAD, ids=[b[0] for b in BAD])
def test_a_json_that_lies_is_one_line_naming_the_file(tmp_path, weights, case, kind, edit, message):
    st = _copy(weights[kind], tmp_path / "ck", edit)
    label = json.loads(st.with_suffix(".json").read_text())["kind"]
    file_name = r"ck\.safetensors" if "tensors" in case else r"ck\.json"
    _refused(lambda: load_prior(st), file_name, message)                          # the package's loader
    _refused(lambda: CLASSES[label].from_pretrained(st), file_name, message)      # the denoiser's own


@pytest.mark.parametrize("case,kind,edit,message", [b for b in BAD if "tensors" not in b[0]],
                         ids=[b[0] for b in BAD if "tensors" not in b[0]])
def test_the_family_lookup_refuses_a_lying_json_too(tmp_path, weights, case, kind, edit, message):
    """Solvers pick their prior's family from the JSON alone (checkpoint_family): it reads no tensors, so
    everything the JSON can tell is checked there already."""
    st = _copy(weights[kind], tmp_path / "ck", edit)
    _refused(lambda: checkpoint_family(st), r"ck\.json", message)


def test_truthful_checkpoints_still_load(weights):
    for kind, st in weights.items():
        assert type(load_prior(st)) is CLASSES[kind] and checkpoint_family(st) is FAMILIES[kind]
    # an HFS prior saved with the grid's default band records null: still an HFS checkpoint
    assert load_prior(weights["hfs"]).band_width == 4


def test_hfs_default_band_round_trips(tmp_path):
    st = HFSDenoiser(EDMPrecond(build_unet("edm-tiny"))).save_pretrained(tmp_path / "h")
    assert json.loads(st.with_suffix(".json").read_text())["band_width"] is None
    assert load_prior(st).band_width is None


def test_the_family_table_agrees_with_the_denoisers():
    """The checks read the denoiser classes (positional channels, band settings); the table must say the same."""
    for family in FAMILIES.values():
        assert family.network_channels(2)[0] - 2 == family.denoiser.positional_channels
        assert family.hfs == bool(getattr(family.denoiser, "hfs_keys", ()))


@pytest.mark.parametrize("bad", [None, "", "missing"], ids=["null", "empty", "missing"])
def test_a_shipped_checkpoint_must_carry_its_hash(tmp_path, monkeypatch, bad):
    """Files found by shipped name live in BUNDLED_CHECKPOINTS; a copy there without its hash is refused."""
    src = denoiser_module.BUNDLED_CHECKPOINTS / "edm-s25"
    bundled, elsewhere = tmp_path / "bundled", tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no file of that name in the working directory: the name is a shipped one
    monkeypatch.setattr(denoiser_module, "BUNDLED_CHECKPOINTS", bundled)

    def strip(config):
        if bad == "missing":
            del config["checkpoint"]["sha256"]
        else:
            config["checkpoint"]["sha256"] = bad

    _copy(src, bundled / "edm-s25")
    assert type(load_prior("edm-s25")) is EDMDenoiser            # with its hash: loads from the patched folder
    _copy(src, bundled / "edm-s25", strip)
    for call in (lambda: load_prior("edm-s25"), lambda: EDMDenoiser.from_pretrained("edm-s25"),
                 lambda: load_prior(bundled / "edm-s25.safetensors")):   # by path into the shipped folder too
        _refused(call, r"edm-s25\.json", r"checkpoint JSON has no 'sha256' of its tensor file; a shipped checkpoint "
                                       r"must carry one")


def test_every_shipped_checkpoint_carries_its_matching_hash():
    from padis_plugin.data.files import sha256_file

    shipped = sorted(denoiser_module.BUNDLED_CHECKPOINTS.glob("*.json"))
    assert shipped
    for js in shipped:
        digest = json.loads(js.read_text())["checkpoint"]["sha256"]
        assert sha256_file(js.with_suffix(".safetensors")) == digest, js.name


def test_a_user_file_without_hash_loads_with_one_warning(tmp_path, weights):
    def strip(config):
        del config["checkpoint"]["sha256"]

    st = _copy(weights["padis"], tmp_path / "mine", strip)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        den = load_prior(st)
    hash_warnings = [w for w in caught if "sha256" in str(w.message)]
    assert len(hash_warnings) == 1 and hash_warnings[0].category is UserWarning
    assert str(hash_warnings[0].message).startswith(str(st.with_suffix(".json")) + ": ")
    assert type(den) is PaDISDenoiser
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_prior(weights["padis"])                            # a file with its hash: no warning


# -- model-config size limits -----------------------------------------------------------------------------------

def test_the_paper_networks_pass_the_limits_and_are_counted_exactly():
    # the published parameter counts (see MODEL_CONFIGS), from the config alone
    assert estimate_parameters(resolve_model_config("padis-paper")) == 54_413_186
    assert estimate_parameters(resolve_model_config("edm-paper")) == 65_460_610


@pytest.mark.parametrize("cfg", ["padis-tiny", "edm-tiny", "padis-small", "edm-small",
                                 {"name": "edm-tiny", "attn_resolutions": [16, 8], "num_blocks": 3,
                                  "channel_mult": [1, 2, 3]},
                                 {"name": "padis-tiny", "image_channels": 10, "channel_mult_emb": 3,
                                  "attn_resolutions": [8], "group_norm": "edm", "resample": "bilinear"}],
                         ids=["padis-tiny", "edm-tiny", "padis-small", "edm-small", "attention", "mrf"])
def test_parameter_estimate_equals_the_built_network(cfg):
    resolved = resolve_model_config(cfg)
    assert estimate_parameters(resolved) == count_parameters(build_unet(resolved))


def test_limits_are_overridable(monkeypatch):
    cfg = {"name": "padis-tiny", "num_blocks": 17}
    with pytest.raises(ConfigError, match=r"'num_blocks' = 17 exceeds the limit 16"):
        resolve_model_config(cfg)
    monkeypatch.setitem(MODEL_LIMITS, "num_blocks", 32)
    assert resolve_model_config(cfg)["num_blocks"] == 17


def test_a_training_config_is_bounded_too(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("kind: padis\nmodel: {name: padis-tiny, overrides: {model_channels: 100000}}\ndata: {path: x.h5}\n"
                    "patch: {sizes: [8], probs: [1.0], batch: [4]}\n")
    with pytest.raises(ConfigError, match=r"cfg\.yaml: 'model' is invalid: model config 'model_channels' = 100000 "
                                          r"exceeds the limit 1,024"):
        load_config(TrainConfig, path)
