"""DDPM++ backbone (deepinv's :class:`~deepinv.models.NCSNpp`) and the named model configurations.

The raw network :math:`F_\\theta(x, c_{noise})` knows nothing of sigma scaling: the EDM preconditioning lives in
:mod:`padis_plugin.prior.precond`. NCSNpp's own ``forward`` applies its built-in preconditioning to *all* input
channels and fails with 4 inputs / 2 outputs, so the wrapper calls ``NCSNpp.forward_unet`` directly.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from deepinv.models.utils import UpDownConv2d
from torch import nn

from padis_plugin.errors import ConfigError
from padis_plugin.prior.channels import DEFAULT_IMAGE_CHANNELS, check_image_channels

#: Named architectures. ``img_resolution`` is *nominal*: NCSNpp uses it only to name blocks and to decide which
#: levels get attention (``img_resolution >> level in attn_resolutions``); any input whose sides are multiples of
#: ``2**(len(channel_mult)-1)`` runs. The bottleneck block always has attention (NCSNpp hard-codes it).
MODEL_CONFIGS: dict[str, dict] = {
    # PaDIS-MRI patch prior as published: 54,413,186 parameters.
    "padis-paper": dict(in_channels=4, out_channels=2, model_channels=128, channel_mult=(2, 2, 2), num_blocks=4,
                        attn_resolutions=(), dropout=0.05, channel_mult_emb=4, img_resolution=576),
    # Small patch priors: padis-small trains on a CPU in hours / a GPU in minutes; padis-tiny is for tests.
    "padis-small": dict(in_channels=4, out_channels=2, model_channels=32, channel_mult=(1, 2, 2), num_blocks=1,
                        attn_resolutions=(), dropout=0.05, channel_mult_emb=4, img_resolution=64),
    "padis-tiny": dict(in_channels=4, out_channels=2, model_channels=32, channel_mult=(1, 1), num_blocks=1,
                       attn_resolutions=(), dropout=0.0, channel_mult_emb=2, img_resolution=16),
    # Whole-image FastMRI-EDM baseline of the paper: attention at the 12x12 level of a 384 image; 65,460,610
    # parameters, identical to the published count (published down/up-sampling is bilinear, ours NCSNpp's box
    # filter; neither has parameters).
    "edm-paper": dict(in_channels=2, out_channels=2, model_channels=128, channel_mult=(1, 1, 2, 2, 2, 2, 2),
                      num_blocks=2, attn_resolutions=(12,), dropout=0.05, channel_mult_emb=4, img_resolution=384),
    "edm-small": dict(in_channels=2, out_channels=2, model_channels=32, channel_mult=(1, 2, 2, 2), num_blocks=1,
                      attn_resolutions=(), dropout=0.05, channel_mult_emb=4, img_resolution=128),
    "edm-tiny": dict(in_channels=2, out_channels=2, model_channels=32, channel_mult=(1, 1), num_blocks=1,
                     attn_resolutions=(), dropout=0.0, channel_mult_emb=2, img_resolution=16),
}

_KEYS = set(MODEL_CONFIGS["padis-paper"])

#: Optional keys with the value every shipped config has; present in a resolved config only when they differ, so
#: the configs of existing checkpoints and runs read (and hash) as before. They describe published EDM networks
#: (see :mod:`padis_plugin.published`): ``group_norm`` "edm" uses min(32, channels // 4) groups where deepinv's
#: NCSNpp uses 32 (the same from 128 channels up); ``resample`` "bilinear" resamples by bilinear interpolation
#: (the FastMRI-EDM network of the PaDIS-MRI authors) instead of the 2 x 2 box filter.
OPTIONAL_KEYS = {"group_norm": ("deepinv", "edm"), "resample": ("box", "bilinear")}

#: Image channels C the network models (:mod:`padis_plugin.prior.channels`: K = C / 2 complex images,
#: interleaved real/imaginary), another optional key: present only when not 2. The network predicts them
#: (``out_channels`` = C); its inputs are C plus any positional channels (PaDIS patches: 2). Given without
#: ``in_channels`` / ``out_channels``, it sets both from the base config: ``("padis-tiny", image_channels=10)``
#: has 12 inputs and 10 outputs, ``("edm-tiny", image_channels=10)`` 10 and 10.
IMAGE_CHANNELS_KEY = "image_channels"


#: Integer keys of a model config and their smallest allowed value.
_INT_KEYS = {"in_channels": 1, "out_channels": 1, "model_channels": 32, "num_blocks": 1, "channel_mult_emb": 1,
             "img_resolution": 1}
#: Keys holding lists of positive integers, and whether the list may be empty.
_LIST_KEYS = {"channel_mult": False, "attn_resolutions": True}

#: Upper limits of a model config, checked before a network is built: a config (a checkpoint JSON's or a
#: training config's) states sizes that nothing else bounds, and ``num_blocks: 100000`` took 8 GB and a minute
#: before failing. Integer keys are bounded by value, ``"channel_mult"`` per entry, ``"levels"`` is
#: ``len(channel_mult)`` and ``"parameters"`` the network's parameter count (:func:`estimate_parameters`, exact,
#: from the config alone). The paper's networks (54 and 65 million parameters) are far inside. A user who needs a
#: larger network raises the entry here (e.g. ``MODEL_LIMITS["num_blocks"] = 32``) before loading or training.
MODEL_LIMITS: dict[str, int] = {"in_channels": 1024, "out_channels": 1024, "model_channels": 1024, "num_blocks": 16,
                                "channel_mult_emb": 16, "img_resolution": 65536, "channel_mult": 16, "levels": 8,
                                "parameters": 10 ** 9}


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _kind(value) -> str:
    return f"{type(value).__name__} {value!r}"[:60]


def _checked(full: dict) -> dict:
    """``full`` with list keys as tuples, after checking the type and range of every key (ConfigError)."""
    out = dict(full)
    for key, low in _INT_KEYS.items():
        v = full[key]
        if not _is_int(v) or v < low:
            raise ConfigError(f"model config '{key}' must be an integer >= {low}, got {_kind(v)}")
        out[key] = int(v)
    if out["model_channels"] % 32:
        raise ConfigError(f"model config 'model_channels' must be a multiple of 32 (GroupNorm), "
                          f"got {out['model_channels']}")
    for key, may_be_empty in _LIST_KEYS.items():
        v = full[key]
        if not isinstance(v, (list, tuple)) or not all(_is_int(m) and m >= 1 for m in v) \
                or (not v and not may_be_empty):
            need = "a list of integers >= 1" + ("" if may_be_empty else " (at least one)")
            raise ConfigError(f"model config '{key}' must be {need}, got {_kind(v)}")
        out[key] = tuple(int(m) for m in v)
    d = full["dropout"]
    if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, float, np.number)) or not 0 <= float(d) < 1:
        raise ConfigError(f"model config 'dropout' must be a number in [0, 1), got {_kind(d)}")
    out["dropout"] = float(d)
    _check_size(out)
    return out


def _over(subject: str, key: str) -> ConfigError:
    return ConfigError(f"model config {subject} exceeds the limit {MODEL_LIMITS[key]:,} "
                       f"(padis_plugin.prior.network.MODEL_LIMITS[{key!r}]; raise it for a larger network)")


def _check_size(cfg: dict) -> None:
    """Refuse a typed config over :data:`MODEL_LIMITS` (ConfigError naming the key, its value and the limit).
    The per-key limits come first, so the parameter count is computed for a bounded loop of small numbers."""
    for key in _INT_KEYS:
        if cfg[key] > MODEL_LIMITS[key]:
            raise _over(f"{key!r} = {cfg[key]}", key)
    if len(cfg["channel_mult"]) > MODEL_LIMITS["levels"]:
        raise _over(f"'channel_mult' with {len(cfg['channel_mult'])} levels", "levels")
    if max(cfg["channel_mult"]) > MODEL_LIMITS["channel_mult"]:
        raise _over(f"'channel_mult' entry {max(cfg['channel_mult'])}", "channel_mult")
    n = estimate_parameters(cfg)
    if n > MODEL_LIMITS["parameters"]:
        raise _over(f"parameter count {n:,} (model_channels={cfg['model_channels']}, channel_mult="
                    f"{list(cfg['channel_mult'])}, num_blocks={cfg['num_blocks']})", "parameters")


def estimate_parameters(cfg: Mapping) -> int:
    """Parameter count of the DDPM++ network of a typed model config (a :func:`resolve_model_config` result),
    from the config alone, without building it: equal to ``count_parameters(build_unet(cfg))``.

    Counted as NCSNpp(``model_type="ddpm"``) lays the network out (EDM's SongUNet, Karras et al. 2022): a noise
    embedding of two linear layers (C_e = ``model_channels * channel_mult_emb``); an encoder of one 3 x 3 input
    convolution, then per level a down-sampling block (after level 0) and ``num_blocks`` blocks; a decoder with
    two bottleneck blocks (the first with attention), per level an up-sampling block (but at the bottom) and
    ``num_blocks + 1`` blocks fed the encoder's skips; GroupNorm and a 3 x 3 output convolution. Each residual
    block: two GroupNorm-SiLU-3x3 convolutions, a linear map of the embedding (one shift per channel), a 1 x 1
    skip convolution when its channels change or it resamples, and one attention head where
    ``attn_resolutions`` says (GroupNorm, 1 x 1 qkv and projection).
    """
    mc, mults, nb = cfg["model_channels"], list(cfg["channel_mult"]), cfg["num_blocks"]
    emb = mc * cfg["channel_mult_emb"]
    attn = set(cfg["attn_resolutions"])

    def block(cin: int, cout: int, attention: bool = False, resample: bool = False) -> int:
        n = 2 * cin + (9 * cin + 1) * cout + (emb + 1) * cout + 2 * cout + (9 * cout + 1) * cout
        if cin != cout or resample:
            n += (cin + 1) * cout
        if attention:
            n += 2 * cout + (cout + 1) * 3 * cout + (cout + 1) * cout
        return n

    n = (mc + 1) * emb + (emb + 1) * emb                                     # noise embedding
    channels, skips = mc, []
    for level, mult in enumerate(mults):
        res = cfg["img_resolution"] >> level
        n += (9 * cfg["in_channels"] + 1) * mc if level == 0 else block(channels, channels, resample=True)
        skips.append(channels)
        for _ in range(nb):
            n += block(channels, mc * mult, attention=res in attn)
            channels = mc * mult
            skips.append(channels)
    for level in reversed(range(len(mults))):
        res = cfg["img_resolution"] >> level
        if level == len(mults) - 1:
            n += block(channels, channels, attention=True) + block(channels, channels)
        else:
            n += block(channels, channels, resample=True)
        for idx in range(nb + 1):
            n += block(channels + skips.pop(), mc * mults[level], attention=idx == nb and res in attn)
            channels = mc * mults[level]
    return n + 2 * channels + (9 * channels + 1) * cfg["out_channels"]    # output GroupNorm and convolution


def resolve_model_config(cfg: str | dict, **overrides) -> dict:
    """Return a full model config dict (with ``"name"``) from a name in :data:`MODEL_CONFIGS` or a dict.

    A dict may hold ``"name"`` (a base config) plus any keys to override. Unknown keys, and values of the wrong
    type or range (checked for every key before a network is built) -> :class:`ConfigError`.
    """
    if isinstance(cfg, str):
        cfg = {"name": cfg}
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"a model config must be a name or a mapping of keys, got {_kind(cfg)}")
    cfg = {**dict(cfg), **overrides}
    name = cfg.pop("name", None)
    if name == "custom":  # what a config built from keys alone is saved as
        name = None
    if name is not None and (not isinstance(name, str) or name not in MODEL_CONFIGS):
        raise ConfigError(f"unknown model config {name!r}; known: {sorted(MODEL_CONFIGS)}")
    allowed_keys = _KEYS | set(OPTIONAL_KEYS) | {IMAGE_CHANNELS_KEY}
    unknown = set(cfg) - allowed_keys
    if unknown:
        raise ConfigError(f"unknown model config keys {sorted(map(str, unknown))}; allowed: {sorted(allowed_keys)}")
    full = copy.deepcopy(MODEL_CONFIGS[name]) if name is not None else {}
    image_channels = check_image_channels(cfg.get(IMAGE_CHANNELS_KEY, DEFAULT_IMAGE_CHANNELS),
                                          f"model config '{IMAGE_CHANNELS_KEY}'")
    if IMAGE_CHANNELS_KEY in cfg and {"in_channels", "out_channels"} <= set(full):
        # the base's positional channels (in - out) stay; the image channels become C
        full["in_channels"] = image_channels + full["in_channels"] - full["out_channels"]
        full["out_channels"] = image_channels
    full.update(cfg)
    missing = _KEYS - set(full)
    if missing:
        raise ConfigError(f"model config misses keys {sorted(missing)}")
    checked = _checked(full)
    if checked["out_channels"] != image_channels:
        raise ConfigError(f"model config 'out_channels' = {checked['out_channels']} must equal "
                          f"'{IMAGE_CHANNELS_KEY}' = {image_channels} (the network predicts the image channels)")
    out = {"name": name or "custom", **{k: v for k, v in checked.items() if k in _KEYS}}
    for key, allowed in OPTIONAL_KEYS.items():
        value = full.get(key, allowed[0])
        if value not in allowed:
            raise ConfigError(f"model config '{key}' must be one of {list(allowed)}, got {_kind(value)}")
        if value != allowed[0]:
            out[key] = value
    if image_channels != DEFAULT_IMAGE_CHANNELS:
        out[IMAGE_CHANNELS_KEY] = image_channels
    return out


def downsampling_factor(cfg: str | dict) -> int:
    """Input sides must be multiples of this (``2**(levels-1)``)."""
    return 2 ** (len(resolve_model_config(cfg)["channel_mult"]) - 1)


class BilinearUpDownConv2d(UpDownConv2d):
    """NCSNpp's up/down-sampling convolution with bilinear resampling (``F.interpolate``, half-pixel centres) in
    place of the box filter: the variant the published FastMRI-EDM network trained with. Downsampling by 2 is
    then the 2 x 2 mean, as with the box filter; upsampling interpolates instead of repeating pixels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        size = (2 * h, 2 * w) if self.up else (h // 2, w // 2)
        x = F.interpolate(x, size=size, mode="bilinear")
        if self.weight is not None:
            x = F.conv2d(x, self.weight.to(x.dtype), padding=self.weight.shape[-1] // 2)
        if self.bias is not None:
            x = x.add_(self.bias.to(x.dtype).reshape(1, -1, 1, 1))
        return x


class DDPMpp(nn.Module):
    """DDPM++ U-Net :math:`F_\\theta(x, c_{noise})` of :footcite:t:`karras2022elucidating`, via deepinv's NCSNpp.

    ``forward(x (B, in_channels, h, w), c_noise (B,)) -> (B, out_channels, h, w)``. No preconditioning.
    Note that NCSNpp puts itself in eval mode when built, so dropout is off until ``.train()`` is called.
    """

    def __init__(self, cfg: str | dict):
        super().__init__()
        from deepinv.models import NCSNpp

        self.config = resolve_model_config(cfg)
        c = self.config
        self.net = NCSNpp(model_type="ddpm", pretrained=None, label_dim=0, augment_dim=0,
                          img_resolution=c["img_resolution"], in_channels=c["in_channels"],
                          out_channels=c["out_channels"], model_channels=c["model_channels"],
                          channel_mult=c["channel_mult"], channel_mult_emb=c["channel_mult_emb"],
                          num_blocks=c["num_blocks"], attn_resolutions=c["attn_resolutions"], dropout=c["dropout"])
        self.multiple = 2 ** (len(c["channel_mult"]) - 1)
        if c.get("group_norm") == "edm":  # EDM's GroupNorm: min(32, C // 4) groups; weights are per channel
            for m in self.net.modules():
                if isinstance(m, nn.GroupNorm):
                    m.num_groups = min(32, m.num_channels // 4)
        if c.get("resample") == "bilinear":
            for m in self.net.modules():
                if type(m) is UpDownConv2d and (m.up or m.down):
                    m.__class__ = BilinearUpDownConv2d  # same parameters and buffers, other resampling

    @property
    def in_channels(self) -> int:
        return self.config["in_channels"]

    @property
    def out_channels(self) -> int:
        return self.config["out_channels"]

    @property
    def image_channels(self) -> int:
        """Image channels C the network models (= ``out_channels``; 2 unless the config says otherwise)."""
        return self.config.get(IMAGE_CHANNELS_KEY, DEFAULT_IMAGE_CHANNELS)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % self.multiple or x.shape[-1] % self.multiple:
            raise ValueError(f"input sides {tuple(x.shape[-2:])} must be multiples of {self.multiple}")
        return self.net.forward_unet(x, c_noise.reshape(-1).expand(x.shape[0]))


def build_unet(cfg: str | dict) -> DDPMpp:
    """Build the raw DDPM++ network for a named config (see :data:`MODEL_CONFIGS`) or a config dict."""
    return DDPMpp(cfg)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
