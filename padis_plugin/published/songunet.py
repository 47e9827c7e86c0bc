"""Map a published EDM ``SongUNet`` (the ``ddpmpp`` arch) onto the package's DDPM++ network, tensor by tensor.

deepinv's :class:`~deepinv.models.NCSNpp` is the same architecture as EDM's ``SongUNet`` with the same module
names, so the name map is ``model.<path>`` (published, inside ``EDMPrecond`` / ``Patch_EDMPrecond``) ->
``net.<path>`` (ours, inside :class:`~padis_plugin.prior.network.DDPMpp`). What is checked rather than assumed:
the architecture is read from the tensors (levels, channels, blocks, attention) and compared with the file's
constructor arguments; options that leave no tensor behind (embedding, encoder and decoder types, the resampling
filter, GroupNorm groups and eps, skip scale) are read from the objects' attributes; and the map must be
complete: every source tensor used exactly once, every target tensor filled, shapes equal.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from ..prior.network import build_unet
from .unpickler import ModuleRecord, PersistentObject, SnapshotError

#: Preconditioner classes we import -> the package's prior family.
PRECOND_KINDS = {"Patch_EDMPrecond": "padis", "EDMPrecond": "edm"}
#: SongUNet constructor options and the only value the ``ddpmpp`` arch (and so this importer) supports.
DDPMPP_OPTIONS = {"embedding_type": "positional", "encoder_type": "standard", "decoder_type": "standard",
                  "channel_mult_noise": 1, "resample_filter": [1, 1], "label_dim": 0, "augment_dim": 0}
_ARCH_HINT = {"encoder_type": " (the 'ncsnpp' arch)", "embedding_type": " (the 'ncsnpp' arch)"}


@dataclass
class ImportedNetwork:
    kind: str                      # "padis" or "edm"
    model_config: dict             # for padis_plugin.prior.network.build_unet
    unet: torch.nn.Module          # our DDPM++ with the published weights
    sigma_data: float
    state: dict                    # our DDPMpp state dict, filled from the file
    class_name: str                # the preconditioner's class
    init_kwargs: dict              # the preconditioner's constructor arguments, JSON-safe


def _plain(value):
    """JSON-safe copy of a constructor argument (numpy scalars, tuples, EasyDicts)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)[:200]


def _children(obj) -> dict:
    mods = obj.modules if isinstance(obj, (PersistentObject, ModuleRecord)) else {}
    return {str(k): v for k, v in mods.items() if v is not None} if isinstance(mods, Mapping) else {}


def walk(obj, prefix: str = ""):
    """Yield ``(dotted name, module record)`` for ``obj`` and every sub-module."""
    yield prefix, obj
    for name, child in _children(obj).items():
        if not isinstance(child, (PersistentObject, ModuleRecord)):
            raise SnapshotError(f"sub-module '{prefix}{name}' is a {type(child).__name__}, not a network module")
        yield from walk(child, f"{prefix}{name}.")


def flat_tensors(obj) -> dict[str, torch.Tensor]:
    """Every parameter and persistent buffer under ``obj``, by dotted name (as ``state_dict`` names them)."""
    out = {}
    for prefix, mod in walk(obj):
        skip = mod.state.get("_non_persistent_buffers_set") or set()
        for group in ("_parameters", "_buffers"):
            entries = mod.state.get(group) or {}
            for name, t in entries.items():
                if t is None or (group == "_buffers" and name in skip):
                    continue
                if not isinstance(t, torch.Tensor):
                    raise SnapshotError(f"'{prefix}{name}' is a {type(t).__name__}, not a tensor")
                out[f"{prefix}{name}"] = t
    return out


def _level_blocks(enc_names) -> tuple[list[int], dict[int, int]]:
    """Resolutions of the encoder levels in order, and the number of ``_block{i}`` per resolution."""
    resolutions, blocks = [], {}
    for name in enc_names:
        m = re.fullmatch(r"(\d+)x\1_(conv|down|block(\d+)|aux_\w+)", name)
        if m is None:
            raise SnapshotError(f"unexpected encoder module {name!r}")
        res = int(m[1])
        if res not in resolutions:
            resolutions.append(res)
        if m[3] is not None:
            blocks[res] = blocks.get(res, 0) + 1
    return resolutions, blocks


def infer_config(unet: PersistentObject, tensors: dict[str, torch.Tensor]) -> dict:
    """Our model config for the published SongUNet, from its tensors, checked against its constructor args."""
    enc = _children(unet).get("enc")
    if enc is None or "map_layer0.weight" not in tensors:
        raise SnapshotError("the SongUNet has no encoder or no noise mapping: not the 'ddpmpp' arch")
    resolutions, blocks = _level_blocks(list(_children(enc)))
    r0 = resolutions[0]
    conv = tensors.get(f"enc.{r0}x{r0}_conv.weight")
    if conv is None:
        raise SnapshotError(f"the encoder has no input convolution 'enc.{r0}x{r0}_conv'")
    model_channels, in_channels = int(conv.shape[0]), int(conv.shape[1])
    mult = []
    for res in resolutions:
        w = tensors.get(f"enc.{res}x{res}_block0.conv0.weight")
        if w is None or w.shape[0] % model_channels:
            raise SnapshotError(f"cannot read the channel multiplier of level {res}x{res}")
        mult.append(int(w.shape[0]) // model_channels)
    counts = set(blocks.get(res, 0) for res in resolutions)
    if len(counts) != 1 or 0 in counts:
        raise SnapshotError(f"levels have different block counts {[blocks.get(r, 0) for r in resolutions]}")
    attn = sorted({res for res in resolutions for i in range(blocks[res])
                   if f"enc.{res}x{res}_block{i}.qkv.weight" in tensors}, reverse=True)
    emb = tensors["map_layer0.weight"]
    out_conv = tensors.get(f"dec.{r0}x{r0}_aux_conv.weight")
    if out_conv is None:
        raise SnapshotError(f"the decoder has no output convolution 'dec.{r0}x{r0}_aux_conv'")
    kw = unet.init_kwargs
    img_resolution = int(kw.get("img_resolution", r0))
    if [img_resolution >> level for level in range(len(resolutions))] != resolutions:
        raise SnapshotError(f"level resolutions {resolutions} do not halve from img_resolution {img_resolution}")
    config = {"in_channels": in_channels, "out_channels": int(out_conv.shape[0]),
              "model_channels": model_channels, "channel_mult": mult, "num_blocks": counts.pop(),
              "attn_resolutions": attn, "dropout": float(kw.get("dropout", 0.0)),
              "channel_mult_emb": int(emb.shape[0]) // model_channels, "img_resolution": img_resolution}
    if emb.shape[1] != model_channels:
        raise SnapshotError(f"unsupported SongUNet option channel_mult_noise={emb.shape[1] / model_channels:g} "
                            f"(the 'ddpmpp' arch has 1)")
    for key in ("in_channels", "out_channels", "model_channels", "channel_mult", "num_blocks", "attn_resolutions",
                "channel_mult_emb"):
        if key in kw and key != "attn_resolutions" and _plain(kw[key]) != _plain(config[key]):
            raise SnapshotError(f"SongUNet argument {key}={_plain(kw[key])!r} disagrees with its tensors "
                                f"({config[key]!r})")
    return config


def check_options(unet: PersistentObject) -> None:
    """Refuse SongUNet options the package's network does not have (one clean line each)."""
    kw = unet.init_kwargs
    for key, want in DDPMPP_OPTIONS.items():
        if key in kw and _plain(kw[key]) != want:
            raise SnapshotError(f"unsupported SongUNet option {key}={_plain(kw[key])!r}{_ARCH_HINT.get(key, '')}; "
                                f"only the 'ddpmpp' arch ({key}={want!r}) imports")
    for name, mod in walk(unet):
        st = mod.state
        if mod.class_name == "UNetBlock":
            if st.get("adaptive_scale", False):
                raise SnapshotError(f"unsupported UNetBlock '{name[:-1]}': adaptive_scale=True")
            if not math.isclose(float(st.get("skip_scale", math.sqrt(0.5))), math.sqrt(0.5), rel_tol=1e-6):
                raise SnapshotError(f"unsupported UNetBlock '{name[:-1]}': skip_scale={st.get('skip_scale')}")
            if int(st.get("num_heads", 0)) not in (0, 1):
                raise SnapshotError(f"unsupported UNetBlock '{name[:-1]}': num_heads={st.get('num_heads')}")
        elif mod.class_name == "Conv2d" and st.get("fused_resample", False):
            raise SnapshotError(f"unsupported Conv2d '{name[:-1]}': fused_resample=True")
        elif mod.class_name == "PositionalEmbedding":
            if not st.get("endpoint", True) or int(st.get("max_positions", 10000)) != 10000:
                raise SnapshotError(f"unsupported noise embedding '{name[:-1]}': endpoint={st.get('endpoint')}, "
                                    f"max_positions={st.get('max_positions')}")
        elif mod.class_name == "FourierEmbedding":
            raise SnapshotError("unsupported SongUNet option embedding_type='fourier' (the 'ncsnpp' arch)")


def group_norm_rule(unet: PersistentObject, tensors: dict) -> str:
    """"edm" (min(32, C // 4) groups) or "deepinv" (32) where the two differ; refuse any other grouping."""
    differs = False
    for name, mod in walk(unet):
        if mod.class_name != "GroupNorm":
            continue
        channels = int(tensors[f"{name}weight"].shape[0])
        groups, eps = int(mod.state.get("num_groups", -1)), float(mod.state.get("eps", 1e-5))
        if groups != min(32, channels // 4):
            raise SnapshotError(f"GroupNorm '{name[:-1]}' has {groups} groups for {channels} channels "
                                f"(EDM's rule min(32, C // 4) gives {min(32, channels // 4)})")
        if not math.isclose(eps, 1e-6, rel_tol=1e-3):
            raise SnapshotError(f"unsupported GroupNorm '{name[:-1]}': eps={eps} (the 'ddpmpp' arch has 1e-6)")
        differs |= groups != 32
    return "edm" if differs else "deepinv"


def resample_mode(unet: PersistentObject) -> str:
    """"bilinear" when the network's source sets the FastMRI-EDM flag ``YAMIN = 1`` (read as text), else "box"."""
    m = re.search(r"^YAMIN\s*=\s*(\d+)", unet.module_src or "", re.M)
    return "bilinear" if m and int(m[1]) else "box"


def map_state(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict filled from the published tensors by the name map ``net.<p>`` <- ``<p>``.

    Every source tensor must be used once and every target filled with the same shape; otherwise one error
    listing what did not map.
    """
    out, problems = {}, []
    used = set()
    for ours, t in target.items():
        src = ours[len("net."):] if ours.startswith("net.") else ours
        if src not in source:
            problems.append(f"missing '{src}'")
            continue
        if tuple(source[src].shape) != tuple(t.shape):
            problems.append(f"'{src}' has shape {tuple(source[src].shape)}, ours {tuple(t.shape)}")
            continue
        out[ours] = source[src].detach().to(torch.float32).clone()
        used.add(src)
    problems += [f"unused '{name}'" for name in source if name not in used]
    if problems:
        more = f" (+{len(problems) - 6} more)" if len(problems) > 6 else ""
        raise SnapshotError(f"the network does not map onto ours: {'; '.join(problems[:6])}{more}")
    return out


def import_network(snapshot) -> ImportedNetwork:
    """The network of an unpickled snapshot (:func:`~.unpickler.read_snapshot`) as our config + state."""
    precond = snapshot.get("ema") if isinstance(snapshot, Mapping) else snapshot
    if not isinstance(precond, PersistentObject):
        keys = sorted(map(str, snapshot)) if isinstance(snapshot, Mapping) else type(snapshot).__name__
        raise SnapshotError(f"holds no network (expected an EDM snapshot with 'ema'; found {keys})")
    kind = PRECOND_KINDS.get(precond.class_name)
    if kind is None:
        raise SnapshotError(f"network class {precond.class_name!r} is not supported (supported: "
                            f"{sorted(PRECOND_KINDS)})")
    init = precond.init_kwargs
    unet = _children(precond).get("model")
    model_type = init.get("model_type", getattr(unet, "class_name", None))
    if not isinstance(unet, PersistentObject) or unet.class_name != "SongUNet" or model_type != "SongUNet":
        found = getattr(unet, "class_name", type(unet).__name__)
        raise SnapshotError(f"model {found!r} (model_type={model_type!r}) is not supported: only SongUNet imports")
    check_options(unet)
    tensors = flat_tensors(unet)
    config = infer_config(unet, tensors)
    want_in = 4 if kind == "padis" else 2
    if (config["in_channels"], config["out_channels"]) != (want_in, 2):
        raise SnapshotError(f"{precond.class_name} with {config['in_channels']} input / {config['out_channels']} "
                            f"output channels; expected {want_in} / 2 (complex image"
                            f"{' + 2 positional channels' if kind == 'padis' else ''})")
    rule, resample = group_norm_rule(unet, tensors), resample_mode(unet)
    if rule != "deepinv":
        config["group_norm"] = rule
    if resample != "box":
        config["resample"] = resample
    try:
        unet_ours = build_unet(config)
    except Exception as e:  # a config the network cannot be built with
        raise SnapshotError(f"cannot build the network ({type(e).__name__}: {e})") from None
    state = map_state(tensors, unet_ours.state_dict())
    unet_ours.load_state_dict(state)
    sigma_data = precond.state.get("sigma_data", init.get("sigma_data", 0.5))
    try:
        sigma_data = float(sigma_data)
    except (TypeError, ValueError):
        raise SnapshotError(f"sigma_data {sigma_data!r} is not a number") from None
    return ImportedNetwork(kind=kind, model_config=config, unet=unet_ours,
                           sigma_data=sigma_data, state=state, class_name=precond.class_name,
                           init_kwargs=_plain(init))
