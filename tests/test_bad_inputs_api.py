"""Inputs that used to be accepted silently although wrong, or that gave bare tracebacks (issue 15): one table row
per case. Each row builds the bad input in ``tmp_path`` and returns the call that must fail; the call must raise
the package's own exception type with a message naming the file (where there is one) and the problem."""
from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest
import torch

from padis_plugin.errors import CheckpointError, ConfigError, DataError

pytestmark = pytest.mark.usefixtures("one_thread")

N, C = 16, 2
NAN, INF = float("nan"), float("inf")


# ------------------------------------------------------------------------------------------------ builders
def _slice(**changes):
    """A small valid in-memory prepared slice (random k-space, uniform maps), with ``changes`` applied."""
    from dataclasses import replace

    from padis_plugin.data.prepared import PreparedSlice

    rng = np.random.default_rng(0)
    ksp = (rng.standard_normal((C, N, N)) + 1j * rng.standard_normal((C, N, N))).astype(np.complex64)
    slc = PreparedSlice(id="s0", kspace=ksp, coil_maps=np.full((C, N, N), C ** -0.5, np.complex64),
                        reference=np.ones((N, N), np.complex64), norm=1.0, source_file="<t>", slice_index=0,
                        contrast="T1", patient_id="p0")
    return replace(slc, **changes)


def _line_mask():
    m = np.zeros((N, N), np.float32)
    m[:, ::2] = 1
    return m


def _prepared(tmp_path, edit=None, **changes):
    """A valid prepared file ``p.h5`` holding :func:`_slice`, then ``edit(h5py.File)`` applied in place."""
    from padis_plugin.data.prepared import write_prepared

    path = tmp_path / "p.h5"
    write_prepared(path, [_slice(**changes)])
    if edit is not None:
        with h5py.File(path, "r+") as f:
            edit(f)
    return path


def _replace(name, value):
    """Edit replacing dataset ``slices/s0/<name>`` by ``value``."""
    def edit(f):
        g = f["slices/s0"]
        if name in g:
            del g[name]
        g.create_dataset(name, data=value)
    return edit


def _set_attr(target, key, value):
    def edit(f):
        if value is None:
            del f[target].attrs[key]
        else:
            f[target].attrs[key] = value
    return edit


def _open(tmp_path, edit, **changes):
    from padis_plugin.data.prepared import PreparedDataset

    path = _prepared(tmp_path, edit, **changes)
    return lambda: PreparedDataset(path)


def _read(tmp_path, edit, **changes):
    from padis_plugin.data.prepared import PreparedDataset

    path = _prepared(tmp_path, edit, **changes)
    return lambda: PreparedDataset(path)[0]


def _physics(mask, batch=1):
    from padis_plugin.acquisition.physics import build_physics

    maps = torch.full((batch, C, N, N), C ** -0.5, dtype=torch.complex64)
    return lambda: build_physics(maps, mask)


def _slice_problem(mask=None, **changes):
    from padis_plugin.acquisition import slice_problem

    return lambda: slice_problem(_slice(**changes), mask)


def _mask_file(tmp_path, arr):
    from padis_plugin.acquisition.masks import load_mask_file

    path = tmp_path / "masks.npy"
    np.save(path, np.asarray(arr))
    return lambda: load_mask_file(path, (N, N))


def _nan_mask():
    return np.full((N, N), np.nan, np.float32)


def _weighted_mask():
    return _line_mask() * 0.5 + 0.25


def _stack_with_bad_second():
    m = np.stack([_line_mask(), _line_mask()])
    m[1] = 0
    return m


def _prepare_raw(mask):
    from padis_plugin.data.prepare import prepare_slice

    ksp = np.random.default_rng(0).standard_normal((C, 32, 32)).astype(np.complex64)
    return lambda: prepare_slice(ksp, 32, mask=mask, source_file="raw.h5", slice_index=3)


def _simulate_slice(snr_db):
    from padis_plugin.data.simulate import simulate_slice

    return lambda: simulate_slice(np.ones((N, N)), coils=2, snr_db=snr_db)


def _simulate_files(tmp_path, snr_db):
    from padis_plugin.data.simulate import simulate_files

    src = tmp_path / "src.npy"
    np.save(src, np.ones((1, N, N), np.float32))
    return lambda: simulate_files(src, tmp_path / "out", coils=2, snr_db=snr_db, progress=False)


def _solver(name, params):
    from padis_plugin.solvers.registry import build_solver

    return lambda: build_solver(name, params)


def _device(spec):
    from padis_plugin.bench.runtime import resolve_device

    return lambda: resolve_device(spec)


def _grid_solver(name, params, grid):
    from padis_plugin.solvers.registry import build_solver

    return lambda: build_solver(name, params, grid=grid)


def _denoise_with(**settings):
    """The shipped 128 PaDIS prior with ``settings`` (e.g. a checkpoint JSON's) on a 32 x 32 image."""
    from padis_plugin.prior import PaDISDenoiser

    den = PaDISDenoiser.from_pretrained("padis-s25", **settings)
    return lambda: den(torch.zeros(1, 2, 32, 32), 1.0)


def _dps_gradient(zeta):
    from padis_plugin.solvers.data_consistency import DPSGradient

    return lambda: DPSGradient(zeta)


def _yaml(tmp_path, text, cls="train", name="cfg.yaml"):
    from padis_plugin.bench.config import BenchConfig
    from padis_plugin.config import load_config
    from padis_plugin.train.config import TrainConfig

    path = tmp_path / name
    path.write_text(text)
    return lambda: load_config(TrainConfig if cls == "train" else BenchConfig, path)


TRAIN = "kind: padis\nmodel: {name: padis-tiny}\ndata: {path: x.h5}\npatch: {sizes: [8], probs: [1.0], batch: [4]}\n"


def _train(tmp_path, extra):
    """TRAIN with the sections of ``extra`` in place of its own (a config gives each key once)."""
    keys = {line.split(":")[0] for line in extra.splitlines() if line and not line[0].isspace()}
    base = "".join(line + "\n" for line in TRAIN.splitlines() if line.split(":")[0] not in keys)
    return _yaml(tmp_path, base + extra)


def _checkpoint(tmp_path, edit_json=None, poison=None, loader="load_prior"):
    """A tiny PaDIS checkpoint ``ck``; ``edit_json(config)`` edits its JSON, ``poison`` sets that weight to NaN."""
    from padis_plugin.checkpoints import load_checkpoint
    from padis_plugin.prior import EDMPrecond, PaDISDenoiser, build_unet, load_prior

    torch.manual_seed(0)
    den = PaDISDenoiser(EDMPrecond(build_unet("padis-tiny")), patch_size=16, pad=4)
    if poison is not None:
        with torch.no_grad():
            dict(den.precond.unet.named_parameters())[poison].view(-1)[0] = float("nan")
    st = den.save_pretrained(tmp_path / "ck")
    if edit_json is not None:
        js = st.with_suffix(".json")
        config = json.loads(js.read_text())
        edit_json(config)
        js.write_text(json.dumps(config))
    return (lambda: load_prior(st)) if loader == "load_prior" else (lambda: load_checkpoint(st))


def _model_key(key, value):
    def edit(config):
        config["model"][key] = value
    return edit


def _top_key(key, value):
    def edit(config):
        if value is _DROP:
            del config[key]
        else:
            config[key] = value
    return edit


_DROP = object()


def _unet(cfg):
    from padis_plugin.prior import build_unet

    return lambda: build_unet(cfg)


def _load_prior(arg):
    from padis_plugin.prior import load_prior

    return lambda: load_prior(arg)


# ------------------------------------------------------------------------------------------------ the table
FIRST_WEIGHT = "net.map_layer0.weight"

CASES = [
    # --- masks: the physics entry point, mask files, raw preparation, prepared slices
    ("physics-nan-mask", lambda t: _physics(torch.full((N, N), NAN)), DataError, r"non-finite"),
    ("physics-zero-mask", lambda t: _physics(torch.zeros(N, N)), DataError, r"samples nothing"),
    ("physics-weighted-mask", lambda t: _physics(torch.from_numpy(_weighted_mask())), DataError,
     r"other than 0 and 1.*weighted .*not supported"),
    ("physics-batch-one-empty", lambda t: _physics(torch.from_numpy(_stack_with_bad_second())[:, None], 2),
     DataError, r"mask 1 of the batch samples nothing"),
    ("slice-problem-nan-mask", lambda t: _slice_problem(_nan_mask()), DataError, r"slice s0: mask .*non-finite"),
    ("slice-problem-inf-mask", lambda t: _slice_problem(np.where(_line_mask() > 0, INF, 0)), DataError,
     r"slice s0: mask .*non-finite"),
    ("slice-problem-acquired-zero", lambda t: _slice_problem(None, undersampled=True,
                                                             acquired_mask=np.zeros((N, N), np.float32)),
     DataError, r"slice s0: mask samples nothing"),
    ("mask-file-all-nan", lambda t: _mask_file(t, _nan_mask()), DataError, r"masks\.npy: mask .*non-finite"),
    ("mask-file-all-zero", lambda t: _mask_file(t, np.zeros((N, N), np.float32)), DataError,
     r"masks\.npy: mask samples nothing"),
    ("mask-file-weighted", lambda t: _mask_file(t, _weighted_mask()), DataError, r"masks\.npy: .*weighted"),
    ("mask-file-second-empty", lambda t: _mask_file(t, _stack_with_bad_second()), DataError,
     r"masks\.npy\[1\]: mask samples nothing"),
    ("mask-file-wrong-grid", lambda t: _mask_file(t, np.ones((N, N + 2), np.float32)), DataError,
     r"masks\.npy: mask shape .* does not match"),
    ("mask-file-strings", lambda t: _mask_file(t, np.array([["a"] * N] * N)), DataError,
     r"masks\.npy: masks must be numeric"),
    ("prepare-nan-mask", lambda t: _prepare_raw(np.full((32, 32), np.nan)), DataError,
     r"raw\.h5\[3\]: mask .*non-finite"),
    ("prepare-zero-mask", lambda t: _prepare_raw(np.zeros((32, 32))), DataError, r"raw\.h5\[3\]: mask samples nothing"),
    ("prepare-weighted-mask", lambda t: _prepare_raw(np.full((32, 32), 0.5)), DataError,
     r"raw\.h5\[3\]: .*weighted"),
    ("prepared-nan-acquired-mask", lambda t: _read(t, _replace("acquired_mask", _nan_mask())), DataError,
     r"p\.h5\[s0\]: acquired_mask .*non-finite"),
    ("write-weighted-acquired-mask", lambda t: (lambda: _prepared(t, None, undersampled=True,
                                                                  acquired_mask=_weighted_mask())),
     DataError, r"p\.h5\[s0\]: acquired_mask .*weighted"),
    # --- simulation SNR
    ("simulate-slice-nan-snr", lambda t: _simulate_slice(NAN), ConfigError, r"snr_db must be a finite number"),
    ("simulate-slice-minus-inf-snr", lambda t: _simulate_slice(-INF), ConfigError, r"snr_db must be a finite"),
    ("simulate-slice-text-snr", lambda t: _simulate_slice("30"), ConfigError, r"snr_db must be a number"),
    ("simulate-files-nan-snr", lambda t: _simulate_files(t, NAN), ConfigError, r"snr_db must be a finite number"),
    # --- solver parameters and the registry
    ("wavelet-negative-level", lambda t: _solver("wavelet-l1", {"level": -1}), ConfigError, r"level must be in \[1, 12\]"),
    ("dps-nan-zeta", lambda t: _solver("padis-dps", {"zeta": NAN}), ConfigError, r"zeta must be finite"),
    ("dps-gradient-nan-zeta", lambda t: _dps_gradient(NAN), ConfigError, r"zeta must be a finite number"),
    ("dps-gradient-inf-zeta", lambda t: _dps_gradient(INF), ConfigError, r"zeta must be a finite number"),
    ("dps-gradient-text-zeta", lambda t: _dps_gradient("x"), ConfigError, r"zeta must be a finite number"),
    ("build-solver-params-list", lambda t: _solver("wavelet-l1", [("lambda", 1)]), ConfigError,
     r"params must be a mapping"),
    ("build-solver-params-str", lambda t: _solver("zero-filled", "lambda=1"), ConfigError,
     r"params must be a mapping"),
    ("build-solver-name-none", lambda t: _solver(None, {}), ConfigError, r"solver name must be a string"),
    # --- stated limits: sizes and scales that would allocate or overflow without bound
    ("dds-steps-1e10", lambda t: _solver("edm-dds", {"steps": 10 ** 10}), ConfigError,
     r"steps must be in \[1, 10000\], got 1e\+10"),
    ("dds-sigma-max-1e300", lambda t: _solver("edm-dds", {"sigma_max": 1e300}), ConfigError,
     r"sigma_max must be in \[1e-06, 10000\]"),
    ("dds-rho-1e-300", lambda t: _solver("padis-dds", {"rho": 1e-300}), ConfigError, r"rho must be in"),
    ("dds-gamma-1e300", lambda t: _solver("padis-dds", {"gamma": 1e300}), ConfigError, r"gamma must be in"),
    ("daps-tau-scale-1e300", lambda t: _solver("padis-daps", {"tau_scale": 1e300}), ConfigError,
     r"tau_scale must be in"),
    ("hfs-pc-snr-1e300", lambda t: _solver("hfs-pc", {"snr": 1e300}), ConfigError, r"snr must be in"),
    ("dds-patch-over-grid", lambda t: _grid_solver("dds", {"patch_size": 1024, "checkpoint": "padis-s25"}, 128),
     ConfigError, r"solver 'dds': patch_size = 1024 exceeds twice the 128 x 128 image \(at most 256\)"),
    ("dds-pad-over-grid", lambda t: _grid_solver("padis-dds", {"pad": 1000000}, 128), ConfigError,
     r"pad must be in \[0, 4096\]"),
    ("denoiser-patch-over-image", lambda t: _denoise_with(patch_size=1024), ConfigError,
     r"patch_size = 1024 exceeds twice the 32 x 32 image \(at most 64"),
    ("denoiser-pad-over-image", lambda t: _denoise_with(pad=1000), ConfigError, r"pad = 1000 exceeds twice the 32"),
    ("bench-negative-mask-seed", lambda t: _yaml(t, "solvers: [{name: zero-filled}]\nacquisition: {seeds: [-1]}\n",
                                                 "bench"), ConfigError, r"'acquisition\.seeds' must be in \[0, 2\*\*32\)"),
    ("bench-huge-seed", lambda t: _yaml(t, "solvers: [{name: zero-filled}]\nseed: 1180591620717411303424\n", "bench"),
     ConfigError, r"'seed' must be in \[0, 2\*\*63\)"),
    ("train-huge-seed", lambda t: _train(t, "run: {seed: 100000000000000000000000}\n"), ConfigError,
     r"'run\.seed' must be in \[0, 2\*\*63\)"),
    ("dds-empty-checkpoint", lambda t: _solver("dds", {"checkpoint": ""}), ConfigError,
     r"a checkpoint must be given as a path or the name of a shipped checkpoint"),
    ("bench-meta-device", lambda t: _device("meta"), ConfigError, r"invalid device 'meta'"),
    ("bench-name-traversal", lambda t: _yaml(t, "name: ../../../../x\nsolvers: [{name: zero-filled}]\n", "bench"),
     ConfigError, r"'name' must be a plain name"),
    ("train-huge-sigma-data", lambda t: _train(t, "model: {name: padis-tiny, sigma_data: 1.0e+30}\n"), ConfigError,
     r"'model\.sigma_data' must be in \[1e-06, 1e\+06\]"),
    ("checkpoint-huge-sigma-data", lambda t: _checkpoint(t, edit_json=lambda c: c.update(sigma_data=1e30)),
     CheckpointError, r"ck\.json: invalid model config .*sigma_data must be in \[1e-06, 1e\+06\]"),
    ("yaml-aliases", lambda t: _yaml(t, "a: &a [x, x]\nb: &b [*a, *a]\nsolvers: [{name: zero-filled}]\n", "bench"),
     ConfigError, r"cfg\.yaml: invalid YAML \(YAML aliases \(\*a\) are not accepted"),
    ("yaml-deep", lambda t: _yaml(t, "a: " + "[" * 5000 + "]" * 5000 + "\n", "bench"), ConfigError,
     r"cfg\.yaml: invalid YAML \(nested deeper than 64 levels"),
    ("yaml-duplicate-key", lambda t: _yaml(t, "solvers: [{name: zero-filled}]\nseed: 1\nseed: 2\n", "bench"),
     ConfigError, r"cfg\.yaml: invalid YAML \(key 'seed' is given twice"),
    # --- config files
    ("bench-negative-crop", lambda t: _yaml(t, "solvers: [{name: zero-filled}]\ncrop: [-8, 100]\n", "bench"),
     ConfigError, r"cfg\.yaml: 'crop' must be \[h, w\] with h, w >= 1"),
    ("bench-negative-uncertainty-crop", lambda t: _yaml(
        t, "solvers: [{name: zero-filled}]\nuncertainty: {crop: [0, 10]}\n", "bench"),
     ConfigError, r"cfg\.yaml: 'uncertainty\.crop' must be"),
    ("bench-empty-yaml", lambda t: _yaml(t, "", "bench"), ConfigError, r"cfg\.yaml: config file is empty"),
    ("train-empty-yaml", lambda t: _yaml(t, ""), ConfigError, r"cfg\.yaml: config file is empty"),
    ("train-comments-only-yaml", lambda t: _yaml(t, "# nothing\n"), ConfigError, r"cfg\.yaml: config file is empty"),
    ("train-yaml-list", lambda t: _yaml(t, "- kind: padis\n"), ConfigError, r"cfg\.yaml: .*must be a mapping"),
    ("train-yaml-scalar", lambda t: _yaml(t, "padis\n"), ConfigError, r"cfg\.yaml: .*must be a mapping"),
    ("train-no-kind", lambda t: _yaml(t, "data: {path: x.h5}\n"), ConfigError,
     r"cfg\.yaml: missing required key 'kind'"),
    ("train-no-data-path", lambda t: _yaml(t, "kind: padis\nrun: {steps: 5}\n"), ConfigError,
     r"cfg\.yaml: missing required key 'data\.path'"),
    ("train-override-channel-mult", lambda t: _train(t, "model: {name: padis-tiny, overrides: {channel_mult: a}}\n"),
     ConfigError, r"cfg\.yaml: 'model' is invalid: model config 'channel_mult' must be a list"),
    ("train-override-dropout", lambda t: _train(t, "model: {name: padis-tiny, overrides: {dropout: x}}\n"),
     ConfigError, r"cfg\.yaml: 'model' is invalid: model config 'dropout' must be a number"),
    ("train-override-channels-float", lambda t: _train(t, "model: {name: padis-tiny, overrides: {model_channels: "
                                                          "32.5}}\n"),
     ConfigError, r"cfg\.yaml: 'model' is invalid: model config 'model_channels' must be an integer"),
    ("train-nan-sigma-data", lambda t: _train(t, "model: {name: padis-tiny, sigma_data: .nan}\n"), ConfigError,
     r"cfg\.yaml: 'model\.sigma_data' must be a number, got NaN"),
    ("train-inf-sigma-data", lambda t: _train(t, "model: {name: padis-tiny, sigma_data: .inf}\n"), ConfigError,
     r"cfg\.yaml: 'model\.sigma_data' must be a finite number > 0"),
    # --- model configs and checkpoints
    ("unet-channel-mult-str", lambda t: _unet({"name": "padis-tiny", "channel_mult": "a"}), ConfigError,
     r"'channel_mult' must be a list"),
    ("unet-zero-blocks", lambda t: _unet({"name": "padis-tiny", "num_blocks": 0}), ConfigError,
     r"'num_blocks' must be an integer >= 1"),
    ("unet-empty-channel-mult", lambda t: _unet({"name": "padis-tiny", "channel_mult": []}), ConfigError,
     r"'channel_mult' must be a list of integers >= 1 \(at least one\)"),
    ("unet-dropout-one", lambda t: _unet({"name": "padis-tiny", "dropout": 1.0}), ConfigError,
     r"'dropout' must be a number in \[0, 1\)"),
    ("unet-list-config", lambda t: _unet(["padis-tiny"]), ConfigError, r"must be a name or a mapping"),
    ("ckpt-channel-mult-str", lambda t: _checkpoint(t, _model_key("channel_mult", "a")), CheckpointError,
     r"ck\.json: invalid model config .*'channel_mult' must be a list"),
    ("ckpt-dropout-str", lambda t: _checkpoint(t, _model_key("dropout", "x")), CheckpointError,
     r"ck\.json: invalid model config .*'dropout' must be a number"),
    ("ckpt-attn-str", lambda t: _checkpoint(t, _model_key("attn_resolutions", ["8"])), CheckpointError,
     r"ck\.json: invalid model config .*'attn_resolutions'"),
    ("ckpt-in-channels-bool", lambda t: _checkpoint(t, _model_key("in_channels", True)), CheckpointError,
     r"ck\.json: invalid model config .*'in_channels' must be an integer"),
    ("ckpt-model-list", lambda t: _checkpoint(t, _top_key("model", ["padis-tiny"])), CheckpointError,
     r"ck\.json: invalid model config .*must be a name or a mapping"),
    ("ckpt-model-missing", lambda t: _checkpoint(t, _top_key("model", _DROP)), CheckpointError,
     r"ck\.json: checkpoint JSON has no 'model'"),
    ("ckpt-sigma-data-str", lambda t: _checkpoint(t, _top_key("sigma_data", "abc")), CheckpointError,
     r"ck\.json: .*sigma_data must be a positive finite number, got 'abc'"),
    ("ckpt-sigma-data-zero", lambda t: _checkpoint(t, _top_key("sigma_data", 0)), CheckpointError,
     r"ck\.json: .*sigma_data must be a positive finite number, got 0"),
    ("ckpt-sigma-data-negative", lambda t: _checkpoint(t, _top_key("sigma_data", -0.5)), CheckpointError,
     r"ck\.json: .*sigma_data must be a positive finite number"),
    ("ckpt-nan-weight-load-prior", lambda t: _checkpoint(t, poison=FIRST_WEIGHT), CheckpointError,
     rf"ck\.safetensors: tensor 'model\.{FIRST_WEIGHT}' holds 1 non-finite"),
    ("ckpt-nan-weight-load-checkpoint", lambda t: _checkpoint(t, poison=FIRST_WEIGHT, loader="raw"),
     CheckpointError, rf"ck\.safetensors: tensor 'model\.{FIRST_WEIGHT}' holds 1 non-finite"),
    ("load-prior-none", lambda t: _load_prior(None), ConfigError, r"checkpoint must be given as a path"),
    ("load-prior-list", lambda t: _load_prior(["padis-s25"]), ConfigError, r"checkpoint must be given as a path"),
    # --- prepared files: structure on open, values on read
    ("prepared-real-kspace-open", lambda t: _open(t, _replace("kspace", np.ones((C, N, N), np.float32))),
     DataError, r"p\.h5\[s0\]: kspace must be complex, got float32"),
    ("prepared-real-kspace-memory", lambda t: (lambda: _prepared(t, None, kspace=np.ones((C, N, N), np.float32))),
     DataError, r"p\.h5\[s0\]: kspace must be a complex array"),
    ("prepared-size-attr-disagrees", lambda t: _open(t, _set_attr("/", "size", 32)), DataError,
     r"p\.h5\[s0\]: kspace shape \(2, 16, 16\) does not match the file's size attribute"),
    ("prepared-size-attr-missing", lambda t: _open(t, _set_attr("/", "size", None)), DataError,
     r"p\.h5: root attribute 'size' is missing"),
    ("prepared-size-attr-text", lambda t: _open(t, _set_attr("/", "size", "big")), DataError,
     r"p\.h5: root attribute 'size' must be a positive integer"),
    ("prepared-coil-maps-shape", lambda t: _open(t, _replace("coil_maps", np.ones((C + 1, N, N), np.complex64))),
     DataError, r"p\.h5\[s0\]: coil_maps shape \(3, 16, 16\) != kspace shape"),
    ("prepared-reference-shape", lambda t: _open(t, _replace("reference", np.ones((N, N - 2), np.complex64))),
     DataError, r"p\.h5\[s0\]: reference shape \(16, 14\) != \(16, 16\)"),
    ("prepared-real-reference", lambda t: _open(t, _replace("reference", np.ones((N, N), np.float32))),
     DataError, r"p\.h5\[s0\]: reference must be complex"),
    ("prepared-acquired-mask-shape", lambda t: _open(t, _replace("acquired_mask", np.ones(N, np.float32))),
     DataError, r"p\.h5\[s0\]: acquired_mask shape"),
    ("prepared-norm-nan", lambda t: _open(t, _set_attr("slices/s0", "norm", NAN)), DataError,
     r"p\.h5\[s0\]: attribute 'norm' must be a positive finite number"),
    ("prepared-slice-index-text", lambda t: _open(t, _set_attr("slices/s0", "slice_index", "x")), DataError,
     r"p\.h5\[s0\]: attribute 'slice_index' must be an integer"),
    ("prepared-missing-attr", lambda t: _open(t, _set_attr("slices/s0", "contrast", None)), DataError,
     r"p\.h5\[s0\]: slice lacks contrast"),
    ("prepared-nan-kspace-read", lambda t: _read(t, _replace("kspace", np.full((C, N, N), np.nan, np.complex64))),
     DataError, r"p\.h5\[s0\]: kspace holds non-finite values"),
    ("prepared-inf-coil-maps-read", lambda t: _read(t, _replace("coil_maps", np.full((C, N, N), np.inf,
                                                                                      np.complex64))),
     DataError, r"p\.h5\[s0\]: coil_maps holds non-finite values"),
    ("prepared-zero-kspace-read", lambda t: _read(t, _replace("kspace", np.zeros((C, N, N), np.complex64))),
     DataError, r"p\.h5\[s0\]: kspace is all zeros"),
    ("prepared-zero-kspace-memory", lambda t: (lambda: _prepared(t, None, kspace=np.zeros((C, N, N), np.complex64))),
     DataError, r"p\.h5\[s0\]: kspace is all zeros"),
]


@pytest.mark.parametrize("build, error, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused(tmp_path, build, error, message):
    call = build(tmp_path)
    with pytest.raises(error, match=message):
        call()


def test_case_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


# ------------------------------------------------------------------------------ what stays allowed
@pytest.mark.parametrize("snr_db", [None, INF, 30, 0.0, -5])
def test_noiseless_and_finite_snr_stay_allowed(snr_db):
    from padis_plugin.data.simulate import simulate_slice

    k, sigma = simulate_slice(np.ones((N, N)), coils=2, snr_db=snr_db, return_sigma=True)
    assert np.isfinite(k).all() and (sigma == 0) == (snr_db is None or snr_db == INF)


def test_good_inputs_still_pass(tmp_path):
    from padis_plugin.data.prepared import PreparedDataset
    from padis_plugin.acquisition.masks import load_mask_file
    from padis_plugin.acquisition import slice_problem
    from padis_plugin.acquisition.physics import build_physics

    mask = _line_mask()
    bool_mask = torch.from_numpy(mask > 0)
    assert build_physics(torch.full((C, N, N), C ** -0.5, dtype=torch.complex64), bool_mask).mask.shape == \
        (1, 2, N, N)
    y, _, _ = slice_problem(_slice(), mask)
    assert torch.isfinite(y).all()
    np.save(tmp_path / "m.npy", np.stack([mask, mask]).astype(bool))
    assert load_mask_file(tmp_path / "m.npy", (N, N)).shape == (2, N, N)
    ds = PreparedDataset(_prepared(tmp_path, None, undersampled=True, acquired_mask=mask))
    assert ds[0].size == N and math.isclose(ds[0].norm, 1.0)
