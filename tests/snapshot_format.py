"""Test helper: write EDM-style ``network-snapshot.pkl`` files and run the published network they describe.

Built from the facts of the format (EDM's ``torch_utils.persistence``: each network object pickles as
``_reconstruct_persistent_obj(meta)`` with ``meta = dict(type='class', version, module_src, class_name,
state=__dict__)``) and of the published architecture (``SongUNet`` of the ``ddpmpp`` arch inside ``EDMPrecond`` /
``Patch_EDMPrecond``), independently of the package's importer and of deepinv's NCSNpp:

* :func:`songunet` builds the module tree with the published names, EDM's GroupNorm rule min(32, C // 4),
  random weights and the attributes EDM stores;
* :func:`write_snapshot` pickles ``dict(ema=..., loss_fn=..., augment_pipe=None, dataset_kwargs=EasyDict)``
  through a stand-in ``torch_utils.persistence`` module registered for the call;
* :func:`reference_forward` is the published ``forward(x, sigma[, x_pos])``, written from the architecture
  description, used as the oracle of the import contract.
"""
from __future__ import annotations

import contextlib
import math
import pickle
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F

SOURCE_TEXT = "# networks.py of the published code (text only in these tests)\nYAMIN = 0\n"


def _reconstruct_persistent_obj(meta):  # what the real module does is irrelevant: the importer never calls it
    raise RuntimeError("the test stand-in persistence hook was called")


class EasyDict(dict):
    pass


@contextlib.contextmanager
def fake_edm_modules():
    """Register ``torch_utils.persistence`` and ``dnnlib.util`` so pickle can name their globals."""
    mods = {name: types.ModuleType(name) for name in ("torch_utils", "torch_utils.persistence", "dnnlib",
                                                      "dnnlib.util")}
    mods["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj
    mods["dnnlib.util"].EasyDict = EasyDict
    saved = {k: sys.modules.get(k) for k in mods}
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    sys.modules.update(mods)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
        _reconstruct_persistent_obj.__module__ = __name__
        EasyDict.__module__, EasyDict.__qualname__ = __name__, "EasyDict"


class Persistent(torch.nn.Module):
    """A persistent network object: pickles as ``_reconstruct_persistent_obj(meta)`` like EDM's decorator."""

    _orig_class_name = "Module"
    _orig_module_src = SOURCE_TEXT

    def __init__(self, init_kwargs=None, **attrs):
        super().__init__()
        self._init_args = ()
        self._init_kwargs = dict(init_kwargs or {})
        for k, v in attrs.items():
            setattr(self, k, v)

    def __reduce__(self):
        meta = dict(type="class", version=6, module_src=self._orig_module_src, class_name=self._orig_class_name,
                    state=dict(self.__dict__))
        return _reconstruct_persistent_obj, (meta,)


def persistent_class(name: str, module_src: str = SOURCE_TEXT) -> type:
    return type(name, (Persistent,), {"_orig_class_name": name, "_orig_module_src": module_src})


def _rand(gen, *shape, scale=1.0):
    return torch.nn.Parameter(torch.randn(*shape, generator=gen) * scale)


class Builder:
    """Module factories of the published layout (random weights from one generator)."""

    def __init__(self, seed=0, module_src=SOURCE_TEXT, yamin=False):
        self.gen = torch.Generator().manual_seed(seed)
        self.src, self.yamin = module_src, yamin

    def cls(self, name):
        return persistent_class(name, self.src)

    def linear(self, cin, cout):
        m = self.cls("Linear")(in_features=cin, out_features=cout)
        m.weight = _rand(self.gen, cout, cin, scale=1 / math.sqrt(cin))
        m.bias = _rand(self.gen, cout, scale=0.1)
        return m

    def conv(self, cin, cout, kernel, up=False, down=False, res=None):
        m = self.cls("Conv2d")(in_channels=cin, out_channels=cout, up=up, down=down, fused_resample=False)
        if self.yamin:
            m.resize_resolution = res
        m.weight = _rand(self.gen, cout, cin, kernel, kernel, scale=1 / math.sqrt(cin * kernel * kernel)) \
            if kernel else None
        m.bias = _rand(self.gen, cout, scale=0.1) if kernel else None
        f = torch.tensor([1.0, 1.0])
        m.register_buffer("resample_filter", (f.outer(f) / f.sum() ** 2)[None, None] if up or down else None)
        return m

    def norm(self, channels):
        m = self.cls("GroupNorm")(num_groups=min(32, channels // 4), eps=1e-6)
        m.weight = torch.nn.Parameter(1 + 0.1 * torch.randn(channels, generator=self.gen))
        m.bias = _rand(self.gen, channels, scale=0.1)
        return m

    def block(self, cin, cout, emb, up=False, down=False, attention=False, res=None):
        m = self.cls("UNetBlock")(in_channels=cin, out_channels=cout, emb_channels=emb,
                                  num_heads=1 if attention else 0, dropout=0.0, skip_scale=np.sqrt(0.5),
                                  adaptive_scale=False)
        m.norm0, m.conv0 = self.norm(cin), self.conv(cin, cout, 3, up, down, res)
        m.affine, m.norm1, m.conv1 = self.linear(emb, cout), self.norm(cout), self.conv(cout, cout, 3, res=res)
        m.skip = self.conv(cin, cout, 1, up, down, res) if cin != cout or up or down else None
        if attention:
            m.norm2, m.qkv, m.proj = self.norm(cout), self.conv(cout, 3 * cout, 1), self.conv(cout, cout, 1)
        return m


def songunet(b: Builder, img_resolution, in_channels, out_channels, model_channels, channel_mult, num_blocks,
             attn_resolutions=(), channel_mult_emb=4, **extra_kwargs):
    """The published SongUNet (``ddpmpp``: positional embedding, standard encoder and decoder, filter [1, 1])."""
    emb = model_channels * channel_mult_emb
    kwargs = dict(img_resolution=img_resolution, in_channels=in_channels, out_channels=out_channels, label_dim=0,
                  augment_dim=0, model_channels=model_channels, channel_mult=list(channel_mult),
                  num_blocks=num_blocks, attn_resolutions=list(attn_resolutions), dropout=0.0,
                  embedding_type="positional", channel_mult_noise=1, encoder_type="standard",
                  decoder_type="standard", resample_filter=[1, 1], **extra_kwargs)
    net = b.cls("SongUNet")(init_kwargs=kwargs, label_dropout=0)
    net.map_noise = b.cls("PositionalEmbedding")(num_channels=model_channels, max_positions=10000, endpoint=True)
    net.map_label = net.map_augment = None
    net.map_layer0, net.map_layer1 = b.linear(model_channels, emb), b.linear(emb, emb)
    net.enc, net.dec = torch.nn.ModuleDict(), torch.nn.ModuleDict()
    cout, skips = in_channels, []
    for level, mult in enumerate(channel_mult):
        res = img_resolution >> level
        if level == 0:
            net.enc[f"{res}x{res}_conv"] = b.conv(cout, model_channels, 3, res=res)
            cout = model_channels
        else:
            net.enc[f"{res}x{res}_down"] = b.block(cout, cout, emb, down=True, res=res)
        skips.append(cout)
        for i in range(num_blocks):
            cin, cout = cout, model_channels * mult
            net.enc[f"{res}x{res}_block{i}"] = b.block(cin, cout, emb, attention=res in attn_resolutions, res=res)
            skips.append(cout)
    for level, mult in reversed(list(enumerate(channel_mult))):
        res = img_resolution >> level
        if level == len(channel_mult) - 1:
            net.dec[f"{res}x{res}_in0"] = b.block(cout, cout, emb, attention=True)
            net.dec[f"{res}x{res}_in1"] = b.block(cout, cout, emb)
        else:
            net.dec[f"{res}x{res}_up"] = b.block(cout, cout, emb, up=True, res=res)
        for i in range(num_blocks + 1):
            cin, cout = cout + skips.pop(), model_channels * mult
            net.dec[f"{res}x{res}_block{i}"] = b.block(cin, cout, emb,
                                                       attention=i == num_blocks and res in attn_resolutions)
        if level == 0:
            net.dec[f"{res}x{res}_aux_norm"] = b.norm(cout)
            net.dec[f"{res}x{res}_aux_conv"] = b.conv(cout, out_channels, 3)
    return net


def precond(b: Builder, unet, patch: bool, sigma_data=0.5):
    name = "Patch_EDMPrecond" if patch else "EDMPrecond"
    kw = dict(img_resolution=unet._init_kwargs["img_resolution"], img_channels=4 if patch else 2,
              label_dim=0, use_fp16=False, sigma_min=0, sigma_max=float("inf"), sigma_data=sigma_data,
              model_type="SongUNet", **{k: v for k, v in unet._init_kwargs.items()
                                        if k in ("model_channels", "channel_mult", "dropout", "embedding_type",
                                                 "encoder_type", "decoder_type", "channel_mult_noise",
                                                 "resample_filter")})
    if patch:
        kw["out_channels"] = 2
    p = b.cls(name)(init_kwargs=kw, img_resolution=kw["img_resolution"], img_channels=kw["img_channels"],
                    label_dim=0, use_fp16=False, sigma_min=0, sigma_max=float("inf"), sigma_data=sigma_data)
    p.model = unet
    return p


def write_snapshot(path, net, protocol=4, extra=None):
    """Pickle ``net`` as EDM's training loop does: ``dict(ema, loss_fn, augment_pipe, dataset_kwargs)``."""
    with fake_edm_modules():
        loss = persistent_class("EDMLoss")(init_kwargs=dict(P_mean=-1.2, P_std=1.2, sigma_data=0.5),
                                           P_mean=-1.2, P_std=1.2, sigma_data=0.5)
        data = dict(ema=net, loss_fn=loss, augment_pipe=None,
                    dataset_kwargs=EasyDict(class_name="training.dataset.ImageFolderDataset", path="/data/x",
                                            resolution=np.int64(384)), **(extra or {}))
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=protocol)
    return path


def tiny_padis(seed=0, **over):
    """A small Patch_EDMPrecond: 4 in / 2 out, 32 channels (EDM's rule gives 8 groups where deepinv has 32)."""
    b = Builder(seed)
    kw = dict(img_resolution=32, in_channels=4, out_channels=2, model_channels=32, channel_mult=(1, 2),
              num_blocks=1, attn_resolutions=(), channel_mult_emb=2)
    kw.update(over)
    return precond(b, songunet(b, **kw), patch=True)


def tiny_edm(seed=1, yamin=True, **over):
    """A small FastMRI-EDM EDMPrecond, with the bilinear resampling flag and attention at 8 x 8."""
    b = Builder(seed, module_src="DEBUG = 0\nYAMIN = 1\n" if yamin else SOURCE_TEXT, yamin=yamin)
    kw = dict(img_resolution=32, in_channels=2, out_channels=2, model_channels=32, channel_mult=(1, 1, 2),
              num_blocks=1, attn_resolutions=(8,), channel_mult_emb=2)
    kw.update(over)
    return precond(b, songunet(b, **kw), patch=False)


# -- the published forward, as the oracle ------------------------------------------------------------------------

def _conv(m, x, yamin):
    if m.up or m.down:
        if yamin:  # resize to the level's resolution by bilinear interpolation
            size = m.resize_resolution
            x = F.interpolate(x, size=(size, size), mode="bilinear")
        else:
            f = m.resample_filter.to(x.dtype)
            c = x.shape[1]
            if m.up:
                x = F.conv_transpose2d(x, (4 * f).repeat(c, 1, 1, 1), groups=c, stride=2)
            else:
                x = F.conv2d(x, f.repeat(c, 1, 1, 1), groups=c, stride=2)
    if m.weight is not None:
        x = F.conv2d(x, m.weight, padding=m.weight.shape[-1] // 2)
    if m.bias is not None:
        x = x + m.bias.reshape(1, -1, 1, 1)
    return x


def _norm(m, x):
    return F.group_norm(x, m.num_groups, m.weight, m.bias, m.eps)


def _block(m, x, emb, yamin):
    h = _conv(m.conv0, F.silu(_norm(m.norm0, x)), yamin)
    h = F.silu(_norm(m.norm1, h + (emb @ m.affine.weight.t() + m.affine.bias)[:, :, None, None]))
    h = _conv(m.conv1, h, yamin)
    h = (h + (_conv(m.skip, x, yamin) if m.skip is not None else x)) * m.skip_scale
    if m.num_heads:
        n, c = h.shape[:2]
        q, k, v = _conv(m.qkv, _norm(m.norm2, h), yamin).reshape(n, c, 3, -1).unbind(2)
        w = torch.softmax(torch.einsum("ncq,nck->nqk", q, k / math.sqrt(c)), dim=2)
        a = torch.einsum("nqk,nck->ncq", w, v).reshape(h.shape)
        h = (_conv(m.proj, a, yamin) + h) * m.skip_scale
    return h


def reference_unet(net, x, noise_labels, yamin=False):
    half = net.map_noise.num_channels // 2
    freqs = (1 / net.map_noise.max_positions) ** (torch.arange(half, dtype=torch.float32) / (half - 1))
    e = noise_labels[:, None] * freqs[None]
    emb = torch.cat([e.sin(), e.cos()], dim=1)  # [cos, sin] with its halves swapped
    for lin in (net.map_layer0, net.map_layer1):
        emb = F.silu(emb @ lin.weight.t() + lin.bias)
    skips = []
    for name, m in net.enc.items():
        x = _conv(m, x, yamin) if name.endswith("_conv") else _block(m, x, emb, yamin)
        skips.append(x)
    out, tmp = None, None
    for name, m in net.dec.items():
        if name.endswith("aux_norm"):
            tmp = _norm(m, x)
        elif name.endswith("aux_conv"):
            out = _conv(m, F.silu(tmp), yamin)
        else:
            if x.shape[1] != m.in_channels:
                x = torch.cat([x, skips.pop()], dim=1)
            x = _block(m, x, emb, yamin)
    return out


def reference_forward(pre, x, sigma, x_pos=None, yamin=False):
    """The published ``EDMPrecond.forward(x, sigma)`` / ``Patch_EDMPrecond.forward(x, sigma, x_pos=pos)``."""
    sigma = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1, 1, 1, 1).expand(x.shape[0], 1, 1, 1)
    sd = pre.sigma_data
    c_skip, c_out = sd ** 2 / (sigma ** 2 + sd ** 2), sigma * sd / (sigma ** 2 + sd ** 2).sqrt()
    c_in, c_noise = 1 / (sd ** 2 + sigma ** 2).sqrt(), sigma.log() / 4
    net_in = c_in * x if x_pos is None else torch.cat([c_in * x, x_pos], dim=1)
    with torch.no_grad():
        return c_skip * x + c_out * reference_unet(pre.model, net_in, c_noise.flatten(), yamin)


def published_tensors(net) -> dict[str, torch.Tensor]:
    """Every tensor of the published network under its published name (``model.<path>`` in the precond)."""
    return {k: v for k, v in net.state_dict().items()}
