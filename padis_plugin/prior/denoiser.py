"""Whole-image deepinv denoisers built on EDM-preconditioned DDPM++: PaDIS patch prior and whole-image EDM.

:class:`PaDISDenoiser` is the patch-based prior of PaDIS (Hu et al. 2024; PaDIS-MRI, Algorithm 1) as a
:class:`deepinv.models.Denoiser` on whole images, so deepinv's samplers (DPS, DiffPIR, PosteriorDiffusion) use it
unchanged: tiling, random offsets and positional channels live inside ``forward``.
"""
from __future__ import annotations

import math
import numbers
import os
import re
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from deepinv.models import Denoiser
from torch.utils.checkpoint import checkpoint

from padis_plugin.checkpoints import (checkpoint_paths, get_group, load_checkpoint, load_state_into,
                                      read_checkpoint_config, save_checkpoint)
from padis_plugin.errors import CheckpointError, ConfigError, where
from padis_plugin.prior.channels import DEFAULT_IMAGE_CHANNELS, complex_to_real_channels, real_channels_to_complex
from padis_plugin.prior.network import build_unet, resolve_model_config
from padis_plugin.prior.patches import (CONVENTIONS, check_tiling, crop_to_image, draw_offset, extract_patches,
                                        make_grid, patch_positions, stitch_patches)
from padis_plugin.prior.precond import EDMPrecond, check_sigma_data
from padis_plugin.rng import randn

BUNDLED_CHECKPOINTS = Path(__file__).resolve().parent.parent / "bundled" / "checkpoints"

#: The settings only a prior with a high-frequency band (HFS) has; a checkpoint JSON holding them is an HFS one.
HFS_KEYS = ("band_width", "keep_low_band")


def _make_generator(generator, seed, rng=None):
    """The denoiser's default generator: ``generator``, or ``rng`` (deepinv's name for it), or a CPU one seeded
    with ``seed``."""
    if generator is not None and rng is not None and generator is not rng:
        raise ConfigError("give the denoiser's generator as generator= or as rng= (deepinv's name), not both")
    generator = generator if generator is not None else rng
    if generator is None and seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    return generator


def _noisy_pad(x: torch.Tensor, pads: tuple, sigma: torch.Tensor, generator) -> torch.Tensor:
    """Zero-pad ``x`` by ``pads`` = (left, right, top, bottom) and add N(0, sigma^2) per channel on the band only.

    Training pads images with zeros *before* adding noise, so at noise level sigma the network has seen the pad
    band as pure N(0, sigma^2) noise; feeding noiseless zeros there would be out of distribution.
    """
    if not any(pads):
        return x
    left, right, top, bottom = pads
    canvas = F.pad(x, pads)
    band = torch.ones(canvas.shape[-2:], device=x.device, dtype=x.dtype)
    band[top:top + x.shape[-2], left:left + x.shape[-1]] = 0
    noise = randn(canvas.shape, generator, x.device, x.dtype)
    return canvas + noise * band * sigma.to(x.dtype).view(-1, 1, 1, 1)


def _per_image_sigma(sigma, batch: int):
    """deepinv may pass sigma as a noise map (B, C, H, W): EDM preconditioning takes one level per image, so a
    map that is constant within each image is reduced to (B,); a map that varies within an image is refused."""
    if not isinstance(sigma, torch.Tensor) or sigma.dim() <= 1:
        return sigma
    flat = sigma.reshape(sigma.shape[0], -1)
    if flat.shape[0] not in (1, batch) or not torch.equal(flat, flat[:, :1].expand_as(flat)):
        raise ConfigError(f"sigma of shape {tuple(sigma.shape)} varies within an image; these priors take one noise "
                          "level per image (EDM preconditioning): pass a float or a (B,) tensor")
    return flat[:, 0]


def deepinv_inputs(forward):
    """Let a denoiser's ``forward(x (B, C, H, W), sigma)`` (C image channels of its network, 2 for one MRI image)
    also take what deepinv hands denoisers: a complex (B, C/2, H, W) image stack (its real and imaginary parts
    are denoised jointly as the C channels of :mod:`padis_plugin.prior.channels`, the result is complex again) and
    sigma as a per-image constant noise map. Any other channel count is refused in one line; in particular a
    real single-channel input: these are priors on complex images, so deepinv's ``ComplexDenoiserWrapper``
    (which denoises the real and imaginary parts separately) does not apply; call the denoiser on the complex
    tensor instead."""

    def wrapped(self, x, sigma, *args, **kwargs):
        sigma = _per_image_sigma(sigma, x.shape[0])
        C = getattr(getattr(self, "precond", None), "image_channels", DEFAULT_IMAGE_CHANNELS)
        if torch.is_complex(x):
            if x.dim() != 4 or 2 * x.shape[1] != C:
                raise ConfigError(f"{type(self).__name__}: a complex input must be (B, {C // 2}, H, W), got "
                                  f"{tuple(x.shape)}")
            return real_channels_to_complex(forward(self, complex_to_real_channels(x), sigma, *args, **kwargs))
        if x.dim() != 4 or x.shape[1] != C:
            raise ConfigError(f"{type(self).__name__}: expected (B, {C}, H, W) real/imaginary channels or a complex "
                              f"(B, {C // 2}, H, W) image, got {tuple(x.shape)} {x.dtype} (deepinv's "
                              "ComplexDenoiserWrapper splits the channels: call this prior on the complex image "
                              "itself)")
        return forward(self, x, sigma, *args, **kwargs)

    wrapped.__name__, wrapped.__doc__, wrapped.__wrapped__ = forward.__name__, forward.__doc__, forward
    return wrapped


def resolve_checkpoint(path_or_name) -> Path:
    """A checkpoint path (stem, ``.safetensors`` or ``.json``) or the name of a shipped checkpoint."""
    if not isinstance(path_or_name, (str, os.PathLike)) or not str(path_or_name):
        raise ConfigError(f"a checkpoint must be given as a path or the name of a shipped checkpoint, "
                          f"got {type(path_or_name).__name__} {path_or_name!r}")
    st, js = checkpoint_paths(path_or_name)
    if st.is_file() or js.is_file():
        return st
    name = str(path_or_name)
    bundled = BUNDLED_CHECKPOINTS / f"{name}.safetensors"
    if "/" not in name and bundled.with_suffix(".json").is_file():
        return bundled
    shipped = sorted(p.stem for p in BUNDLED_CHECKPOINTS.glob("*.json")) if BUNDLED_CHECKPOINTS.is_dir() else []
    raise CheckpointError(where(path_or_name, f"no such checkpoint file or shipped checkpoint (shipped: {shipped})"))


def whole_number(value) -> int | None:
    """``value`` as an int when it is a whole number (an int, or a float such as 13.0; not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    f = float(value)
    return int(f) if math.isfinite(f) and f.is_integer() else None


def check_band_width_setting(value, what: str = "band_width") -> int | None:
    """A denoiser's ``band_width`` setting: an integer >= 1 (low-band columns) or None (the grid's default,
    :func:`padis_plugin.prior.hfs.default_band_width`); :class:`ConfigError` naming ``what`` otherwise."""
    if value is None:
        return None
    n = whole_number(value)
    if n is None or n < 1:
        raise ConfigError(f"{what} must be an integer >= 1 or null (the grid's default), got "
                          f"{f'{type(value).__name__} {value!r}'[:60]}")
    return n


def _has_band(cls) -> bool:
    """Whether denoiser class ``cls`` is an HFS prior (it reads :data:`HFS_KEYS` from its checkpoint)."""
    return bool(set(HFS_KEYS) & set(getattr(cls, "settings", ())))


def _kind_of(positional: int, band: bool) -> str:
    """The kind (quoted) of this package's denoisers whose network takes ``positional`` channels besides the
    image and which have (``band``) or lack a high-frequency band; "no known kind" when none does. The classes
    are found as subclasses of the two base denoisers, so the HFS ones (:mod:`.hfs`) count once imported."""
    todo, kinds = [PaDISDenoiser, EDMDenoiser], []
    while todo:
        c = todo.pop(0)
        todo.extend(c.__subclasses__())
        if c.__module__.startswith("padis_plugin.") and c.positional_channels == positional \
                and _has_band(c) == band and c.kind not in kinds:
            kinds.append(c.kind)
    return " or ".join(map(repr, kinds)) or "no known kind"


def _channel_mismatch(cls, n_in: int, n_out: int, source: str) -> str | None:
    """The problem when a network of ``n_in`` inputs and ``n_out`` outputs is not one of kind ``cls.kind``."""
    if n_in - n_out == cls.positional_channels:
        return None
    return (f"checkpoint kind {cls.kind!r} does not match its {source}: {n_in} input channels for {n_out} image "
            f"channels is a network of kind {_kind_of(n_in - n_out, _has_band(cls))}, while kind {cls.kind!r} takes "
            f"{n_out + cls.positional_channels} ({cls.positional_channels} positional channels)")


def check_checkpoint_json(config: dict, cls, path) -> tuple[dict, float]:
    """Check a checkpoint JSON ``config`` for denoiser class ``cls`` -> ``(model config, sigma_data)``.

    Its ``"kind"`` (``cls.kind``, checked by the caller) must agree with what else the JSON says: the network's
    inputs are the image channels plus ``cls.positional_channels`` (2 for patch priors, their positions; 0
    otherwise), and the settings of :data:`HFS_KEYS` are present exactly for HFS kinds (``band_width`` an
    integer >= 1 or null, ``keep_low_band`` a bool). An HFS network is a plain one trained with noise in the
    high band only, so no tensor tells the two apart: the band settings are what the JSON can check. Every
    problem raises :class:`CheckpointError` naming ``path`` and, for a kind that disagrees, both kinds.
    """
    kind = cls.kind
    if "model" not in config:
        raise CheckpointError(where(path, "checkpoint JSON has no 'model' config"))
    try:
        model_config = resolve_model_config(config["model"])
        sigma_data = check_sigma_data(config.get("sigma_data", 0.5))
    except ConfigError as e:
        raise CheckpointError(where(path, f"invalid model config in checkpoint JSON ({e})")) from None
    problem = _channel_mismatch(cls, model_config["in_channels"], model_config["out_channels"], "model config")
    if problem:
        raise CheckpointError(where(path, problem))
    present = [k for k in HFS_KEYS if k in config]
    if not _has_band(cls):
        if present:
            raise CheckpointError(where(path, f"checkpoint kind {kind!r} has no high-frequency band, but its JSON "
                                              f"holds {present}, the band of kind "
                                              f"{_kind_of(cls.positional_channels, True)} (an HFS prior)"))
        return model_config, sigma_data
    if "band_width" not in config:
        raise CheckpointError(where(path, f"checkpoint kind {kind!r} (an HFS prior) has no 'band_width' in its "
                                          "JSON, the low band it was trained with (an integer >= 1, or null for the "
                                          f"grid's default): weights of kind {_kind_of(cls.positional_channels, False)}"
                                          f" labelled {kind!r}?"))
    try:
        check_band_width_setting(config["band_width"], "checkpoint 'band_width'")
    except ConfigError as e:
        raise CheckpointError(where(path, str(e))) from None
    if not isinstance(config.get("keep_low_band", False), bool):
        raise CheckpointError(where(path, f"checkpoint 'keep_low_band' must be true or false, got "
                                          f"{config['keep_low_band']!r}"[:200]))
    return model_config, sigma_data


#: Keys of the network's input convolution and output convolution in its state dict (NCSNpp's names).
_INPUT_CONV = re.compile(r"net\.enc\.\d+x\d+_conv\.weight")
_OUTPUT_CONV = re.compile(r"net\.dec\.\d+x\d+_aux_conv\.weight")


def _check_tensor_kind(state: dict, cls, path) -> None:
    """The tensors' own channel counts (input convolution: image + positional channels in; output convolution:
    image channels out) must be those of kind ``cls.kind``, whatever the JSON's model config says."""
    first = [t for k, t in state.items() if _INPUT_CONV.fullmatch(k) and t.dim() == 4]
    last = [t for k, t in state.items() if _OUTPUT_CONV.fullmatch(k) and t.dim() == 4]
    if len(first) == 1 and len(last) == 1:  # otherwise load_state_into names the missing keys
        problem = _channel_mismatch(cls, int(first[0].shape[1]), int(last[0].shape[0]), "tensors")
        if problem:
            raise CheckpointError(where(path, problem))


def is_shipped(path) -> bool:
    """Whether checkpoint ``path`` lies in the package's folder of shipped checkpoints."""
    return BUNDLED_CHECKPOINTS.is_dir() and Path(path).resolve().parent == BUNDLED_CHECKPOINTS.resolve()


def _load_precond(path_or_name, cls, device):
    """Load ``(precond, config, path)`` of a checkpoint of kind ``cls.kind`` (denoiser class ``cls``); EMA
    weights when present, else ``model``. Shipped checkpoints must carry their tensor file's hash."""
    path = resolve_checkpoint(path_or_name)
    _, js_path = checkpoint_paths(path)
    config = read_checkpoint_config(js_path)  # the JSON first: a bad model config is named before tensors load
    if config.get("kind") != cls.kind:
        raise CheckpointError(where(path, f"checkpoint kind is {config.get('kind')!r}, expected {cls.kind!r}"))
    model_config, sigma_data = check_checkpoint_json(config, cls, js_path)
    groups, config = load_checkpoint(path, require_hash=is_shipped(path))
    state = groups["ema"] if "ema" in groups else get_group(groups, "model", path)
    _check_tensor_kind(state, cls, path)
    try:
        unet = build_unet(model_config)
    except (TypeError, ValueError, RuntimeError) as e:  # values passed the checks but the network refuses them
        raise CheckpointError(where(js_path, f"invalid model config in checkpoint JSON ({e})")) from None
    load_state_into(unet, state, path)
    precond = EDMPrecond(unet, sigma_data=sigma_data)  # image channels: the model config's
    precond.recommended = dict(config.get("recommended") or {})  # the checkpoint's own sampler settings
    precond.eval()
    if device is not None:
        precond.to(device)
    return precond, config, path


def _first(*values):
    """The first value that is not None (None when all are)."""
    return next((v for v in values if v is not None), None)


def _precond_or_pretrained(den, precond, pretrained, device) -> tuple:
    """``(precond, checkpoint settings)``: the given network, or the one of checkpoint ``pretrained`` (a path or a
    shipped name: deepinv's ``pretrained=`` convention) with its saved inference settings."""
    if pretrained is None:
        if precond is None:
            raise ConfigError(f"{type(den).__name__} needs a preconditioned network or pretrained=<checkpoint>")
        return precond, {}
    if precond is not None:
        raise ConfigError(f"{type(den).__name__}: give a network or pretrained=, not both")
    precond, config, _ = _load_precond(pretrained, type(den), device)
    return precond, _inference_settings(config, getattr(den, "settings", ()))


class PaDISDenoiser(Denoiser):
    r"""PaDIS patch-prior denoiser on whole images: random-offset non-overlapping P x P tiling of a padded canvas.

    For an image batch ``x`` (B, C, H, W) at noise level :math:`\sigma`: draw one grid offset per call, shared by
    the batch (one draw keeps the canvas shape common, so every patch of every image goes through one batched
    network call); zero-pad to the grid's canvas and put fresh N(0, sigma^2) noise on the pad band (see
    :func:`_noisy_pad`); denoise all patches with their positional channels (chunks of ``max_batch`` patches);
    stitch and return the image region. Returning only the image region is the published "zero the pad band".
    :meth:`denoise_canvas` instead takes a padded canvas whose band the caller keeps (the published evolving
    padded iterate, PaDIS-MRI Algorithm 1; see ``pad_band`` of :class:`~padis_plugin.solvers.dps.PaDISDPS`).

    :param EDMPrecond precond: patch denoiser :math:`D_\theta(x, \sigma, \text{pos})` (C + 2 in / C out channels;
        C = 2 for one MRI image, see :mod:`padis_plugin.prior.channels`).
    :param int patch_size: P (a multiple of the network's downsampling factor).
    :param int pad: M; grid offsets are uniform in [1, M] per axis.
    :param int max_batch: most patches per network call (None: all at once). With a gradient through the prior
        (DPS), each chunk's activations are recomputed in the backward pass instead of kept, so memory is that of
        one chunk (about a third more compute).
    :param str position_convention: ``"image"`` (default) or ``"published"`` (see :mod:`.patches`).
    :param int canvas_pad: canvas padding the ``"published"`` linspace spans. ``None`` (default): ``pad`` = M, the
        published inference canvas N + 2M (512 at N = 384, M = 64, step 2/511) while training spanned N + 2N/4
        (576, step 2/575): the published train/inference mismatch. The training pad (96) removes
        it. Ignored by ``"image"``.
    :param torch.Generator generator: default random generator (offsets and pad noise); a call's ``generator``
        overrides it; None uses torch's global RNG.
    :param int seed: builds a CPU generator when ``generator`` is None.
    :param torch.Generator rng: deepinv's name for ``generator``. deepinv's samplers do not hand their ``rng`` to
        the denoiser: for a seeded ``DPS`` / ``PosteriorDiffusion`` give both the same generator (``seed=`` at call
        time then reseeds both); ``DiffPIR`` and ``DDRM`` reseed torch's global RNG, which a denoiser without a
        generator draws from.
    :param pretrained: a checkpoint path or shipped name to load instead of ``precond`` (deepinv's convention;
        the same as :meth:`from_pretrained`); settings left at None take the checkpoint's (else P = M = 64,
        ``"image"`` positions).
    :param device: where ``pretrained`` weights go.
    """

    kind = "padis"  # the checkpoint JSON's "kind" (see :mod:`padis_plugin.prior.families`)
    positional_channels = 2  # network inputs besides the image channels: the patch's positions
    settings = ("patch_size", "pad", "max_batch", "position_convention", "canvas_pad")  # from the checkpoint JSON

    def __init__(self, precond: EDMPrecond | None = None, patch_size: int | None = None, pad: int | None = None,
                 max_batch: int | None = None, position_convention: str | None = None, canvas_pad: int | None = None,
                 generator: torch.Generator | None = None, seed: int | None = None, pretrained=None, device=None,
                 rng: torch.Generator | None = None):
        super().__init__()
        precond, saved = _precond_or_pretrained(self, precond, pretrained, device)
        patch_size = _first(patch_size, saved.get("patch_size"), 64)
        pad = _first(pad, saved.get("pad"), 64)
        max_batch = _first(max_batch, saved.get("max_batch"))
        position_convention = _first(position_convention, saved.get("position_convention"), "image")
        canvas_pad = _first(canvas_pad, saved.get("canvas_pad"))
        if position_convention not in CONVENTIONS:
            raise ConfigError(f"position_convention must be one of {CONVENTIONS}, got {position_convention!r}")
        multiple = getattr(getattr(precond, "unet", None), "multiple", 1)
        if patch_size <= 0 or patch_size % multiple:
            raise ConfigError(f"patch_size {patch_size} must be a positive multiple of {multiple} for this network")
        if pad < 0 or (max_batch is not None and max_batch < 1):
            raise ConfigError(f"need pad >= 0 and max_batch >= 1, got pad={pad}, max_batch={max_batch}")
        self.precond = precond
        self.patch_size, self.pad, self.max_batch = int(patch_size), int(pad), max_batch
        self.position_convention = position_convention
        if canvas_pad is not None and canvas_pad < 0:
            raise ConfigError(f"canvas_pad must be >= 0 or None (= pad), got {canvas_pad}")
        self.canvas_pad = None if canvas_pad is None else int(canvas_pad)
        self.generator = _make_generator(generator, seed, rng)

    def set_generator(self, generator: torch.Generator | None) -> None:
        self.generator = generator

    def with_settings(self, **changes) -> "PaDISDenoiser":
        """A new denoiser sharing these weights with some of its :attr:`settings` (``patch_size``, ``pad``,
        ``max_batch``, ``position_convention``, ``canvas_pad``) changed (validated as in the constructor)."""
        allowed = self.settings
        unknown = sorted(set(changes) - set(allowed))
        if unknown:
            raise ConfigError(f"with_settings: unknown setting(s) {unknown}; allowed: {list(allowed)}")
        kw = {k: getattr(self, k) for k in allowed}
        kw.update(changes)
        return type(self)(self.precond, generator=self.generator, **kw)

    @property
    def config(self) -> dict:
        """Everything needed to rebuild this denoiser (the JSON of a ``kind="padis"`` checkpoint)."""
        return {"kind": self.kind, "model": dict(self.precond.unet.config), "sigma_data": self.precond.sigma_data,
                "patch_size": self.patch_size, "pad": self.pad, "max_batch": self.max_batch,
                "position_convention": self.position_convention, "canvas_pad": self.canvas_pad}

    @deepinv_inputs
    def forward(self, x: torch.Tensor, sigma, generator: torch.Generator | None = None, **kwargs) -> torch.Tensor:
        """Denoise ``x`` (B, C, H, W) at ``sigma`` (float, 0-d or (B,) tensor) -> (B, C, H, W); a complex
        (B, C/2, H, W) image stack gives a complex result (see :func:`deepinv_inputs`)."""
        B, _, H, W = x.shape
        g = generator if generator is not None else self.generator
        sigma = self._handle_sigma(sigma, batch_size=B, device=x.device, dtype=x.dtype)
        check_tiling((H, W), self.patch_size, self.pad)
        grid = make_grid((H, W), self.patch_size, draw_offset(self.pad, g))
        return self._denoise_tiles(_noisy_pad(x, grid.pad, sigma, g), sigma, grid)

    def denoise_canvas(self, canvas: torch.Tensor, sigma, generator: torch.Generator | None = None) -> torch.Tensor:
        """Denoise the image inside a padded canvas (B, C, H + 2M, W + 2M), M = ``pad``, whose band the caller
        keeps (the published padded iterate of PaDIS-MRI Algorithm 1) -> (B, C, H, W).

        Same offset draw as :meth:`forward`; the tiles read the band as given. Where the grid reaches past the
        canvas (only when P > M) it gets fresh N(0, sigma^2) noise, as in :meth:`forward`.
        """
        B, _, Hc, Wc = canvas.shape
        M = self.pad
        H, W = Hc - 2 * M, Wc - 2 * M
        if H < 1 or W < 1:
            raise ConfigError(f"denoise_canvas: a {Hc}x{Wc} canvas holds no image inside a pad of {M}")
        g = generator if generator is not None else self.generator
        sigma = self._handle_sigma(sigma, batch_size=B, device=canvas.device, dtype=canvas.dtype)
        check_tiling((H, W), self.patch_size, M)
        grid = make_grid((H, W), self.patch_size, draw_offset(M, g))
        left, right, top, bottom = grid.pad  # top, left <= M: the grid starts inside the canvas
        beyond = (0, max(right - M, 0), 0, max(bottom - M, 0))
        tiles = _noisy_pad(canvas, beyond, sigma, g)[..., M - top:M + H + bottom, M - left:M + W + right]
        return self._denoise_tiles(tiles, sigma, grid)

    def _denoise_tiles(self, canvas: torch.Tensor, sigma: torch.Tensor, grid) -> torch.Tensor:
        """Denoise every P x P tile of the grid's ``canvas`` in batched network calls -> the image region."""
        B, (H, W) = canvas.shape[0], grid.image_shape
        patches = extract_patches(canvas, self.patch_size)
        n = grid.num_patches
        tops, lefts = grid.origins(device=canvas.device)
        cp = self.pad if self.canvas_pad is None else self.canvas_pad
        pos = patch_positions(tops + cp, lefts + cp, self.patch_size, (H, W), self.position_convention,
                              canvas_pad=cp, device=canvas.device)
        pos = pos.unsqueeze(0).expand(B, -1, -1, -1, -1).reshape(B * n, *pos.shape[1:])
        sig = sigma.repeat_interleave(n)
        step = self.max_batch or patches.shape[0]
        call = self.precond
        if step < patches.shape[0] and torch.is_grad_enabled() and patches.requires_grad:
            # A gradient through the prior (DPS) would keep every chunk's activations until the backward pass:
            # keep only each chunk's inputs and recompute its activations then, so memory is one chunk's.
            call = partial(checkpoint, self.precond, use_reentrant=False)
        out = torch.cat([call(patches[i:i + step], sig[i:i + step], pos[i:i + step])
                         for i in range(0, patches.shape[0], step)])
        return crop_to_image(stitch_patches(out, B, grid.n_rows, grid.n_cols), grid)

    @classmethod
    def from_pretrained(cls, path_or_name, device=None, **overrides) -> "PaDISDenoiser":
        """Load a ``kind="padis"`` checkpoint (path or shipped name); ``overrides`` replace patch settings."""
        precond, config, path = _load_precond(path_or_name, cls, device)
        kw = _inference_settings(config, cls.settings)
        kw.update(overrides)
        try:
            return cls(precond, **kw)
        except (ConfigError, TypeError) as e:
            raise CheckpointError(where(path, f"invalid denoiser settings ({e})")) from None

    def save_pretrained(self, stem, fp16: bool = False, extra_config: dict | None = None) -> Path:
        """Save the current weights (group ``model``) and :attr:`config` as a checkpoint."""
        return save_checkpoint(stem, {"model": self.precond.unet.state_dict()},
                               {**self.config, **(extra_config or {})}, fp16=fp16)


def _inference_settings(config: dict, keys=PaDISDenoiser.settings) -> dict:
    """Patch settings of a ``kind="padis"`` checkpoint JSON. Training checkpoints once stored their training
    pad as ``canvas_pad`` (it is ``patch_training.pad``): that is the training canvas, not an inference
    setting, so it is dropped and the published inference canvas N + 2M applies."""
    kw = {k: config[k] for k in keys if k in config}
    train_pad = (config.get("patch_training") or {}).get("pad")
    if kw.get("canvas_pad") is not None and kw["canvas_pad"] == train_pad:
        kw["canvas_pad"] = None
    return kw


class EDMDenoiser(Denoiser):
    r"""Whole-image EDM denoiser (FastMRI-EDM baseline): :math:`D_\theta(x, \sigma)` on (B, C, H, W) images.

    H and W are padded up to a multiple of the network's downsampling factor (image centred) and cropped back. The
    band is zeros plus fresh N(0, sigma^2) noise, as for PaDIS: MRI images have a dark background, so a noisy
    zero band looks like the noisy background the network saw in training, whereas reflection would copy (and
    so correlate) the noise and mirror anatomy. When no padding is needed (e.g. 384 x 384) nothing random happens.

    :param EDMPrecond precond: C-in / C-out preconditioned network (C = 2 for one MRI image).
    :param generator, seed, rng: as for :class:`PaDISDenoiser` (used only for the pad-band noise).
    :param pretrained, device: a checkpoint to load instead of ``precond``, as for :class:`PaDISDenoiser`.
    """

    kind = "edm"
    positional_channels = 0  # network inputs besides the image channels
    settings: tuple = ()  # denoiser settings read from the checkpoint JSON (subclasses add theirs)

    def __init__(self, precond: EDMPrecond | None = None, generator: torch.Generator | None = None,
                 seed: int | None = None, pretrained=None, device=None, rng: torch.Generator | None = None):
        super().__init__()
        self.precond = _precond_or_pretrained(self, precond, pretrained, device)[0]
        self.multiple = getattr(getattr(self.precond, "unet", None), "multiple", 1)
        self.generator = _make_generator(generator, seed, rng)

    def set_generator(self, generator: torch.Generator | None) -> None:
        self.generator = generator

    @property
    def config(self) -> dict:
        return {"kind": self.kind, "model": dict(self.precond.unet.config), "sigma_data": self.precond.sigma_data}

    @deepinv_inputs
    def forward(self, x: torch.Tensor, sigma, generator: torch.Generator | None = None, **kwargs) -> torch.Tensor:
        B, _, H, W = x.shape
        g = generator if generator is not None else self.generator
        sigma = self._handle_sigma(sigma, batch_size=B, device=x.device, dtype=x.dtype)
        m = self.multiple
        top, left = (-H % m) // 2, (-W % m) // 2
        pads = (left, -W % m - left, top, -H % m - top)
        out = self.precond(_noisy_pad(x, pads, sigma, g), sigma)
        return out[..., top:top + H, left:left + W]

    @classmethod
    def from_pretrained(cls, path_or_name, device=None, **overrides) -> "EDMDenoiser":
        """Load a ``kind="edm"`` checkpoint (path or shipped name)."""
        precond, config, path = _load_precond(path_or_name, cls, device)
        kw = {k: config[k] for k in cls.settings if k in config}
        kw.update(overrides)
        try:
            return cls(precond, **kw)
        except (ConfigError, TypeError) as e:
            raise CheckpointError(where(path, f"invalid denoiser settings ({e})")) from None

    def save_pretrained(self, stem, fp16: bool = False, extra_config: dict | None = None) -> Path:
        return save_checkpoint(stem, {"model": self.precond.unet.state_dict()},
                               {**self.config, **(extra_config or {})}, fp16=fp16)
