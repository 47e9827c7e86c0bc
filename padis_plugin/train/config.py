"""Training configuration: :class:`TrainConfig` (typed YAML sections with cross-field validation) and the
pure per-step schedules it defines (:func:`learning_rate`, :func:`ema_beta`)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..data.source import BUNDLED_DEMO
from ..errors import ConfigError, where
from ..prior.families import FAMILIES, get_family
from ..prior.channels import DEFAULT_IMAGE_CHANNELS
from ..prior.network import IMAGE_CHANNELS_KEY, downsampling_factor, resolve_model_config
from ..prior.patches import CONVENTIONS

KINDS = tuple(FAMILIES)  # the prior families a config's ``kind`` may name


@dataclass
class ModelSection:
    """Network: a name in :data:`padis_plugin.prior.network.MODEL_CONFIGS` plus optional key overrides.

    ``overrides: {image_channels: C}`` trains a prior on C real channels (even; K = C / 2 complex images, e.g. 10
    for five MRF subspace images) and sets the network's inputs / outputs from the named config's; the training
    images must then have C channels (an image-array file, :mod:`padis_plugin.train.image_arrays`)."""

    name: str = "padis-paper"
    overrides: dict[str, Any] = field(default_factory=dict)
    sigma_data: float = 0.5


@dataclass
class DataSection:
    """Training slices: a prepared file (or ``bundled-demo``) or an image-array file of (N, C, H, H) real-channel
    images (``.npz`` / HDF5, :mod:`padis_plugin.train.image_arrays`), a seeded subset of ``num_slices`` (S)."""

    path: str = field(default=BUNDLED_DEMO, metadata={"required": True})  # a config file must name it
    num_slices: int | None = None          # S; None = every matching slice
    seed: int = 0                          # subset selection seed (recorded in checkpoints)
    patients: list[str] | None = None      # training pool (e.g. the train split); None = all
    contrasts: list[str] | None = None     # e.g. [T2] for the cross-contrast experiment
    one_per_patient: bool = True


@dataclass
class PatchSection:
    """Patch sampling of the patch families (``padis``, ``patch-hfs``; ignored by the whole-image ones);
    published 16/32/64, 0.2/0.3/0.5, 256/128/64."""

    sizes: list[int] = field(default_factory=lambda: [16, 32, 64])
    probs: list[float] = field(default_factory=lambda: [0.2, 0.3, 0.5])
    batch: list[int] = field(default_factory=lambda: [256, 128, 64])   # patches per step (all ranks together)
    pad: int | None = None                 # zero padding per side; None = N // 4
    position_convention: str = "image"
    inference_patch_size: int | None = None  # written to checkpoints for the denoiser; None = max(sizes)
    inference_pad: int = 64                  # grid-offset range M of the inference denoiser


@dataclass
class HFSSection:
    """High-frequency band of the HFS families (``hfs``, ``patch-hfs``; ignored by the others)."""

    band_width: int | None = None          # central phase-encode columns m_lf; None = round(16/320 N), >= 1
    keep_low_band: bool = False            # the denoiser returns P x + Q D (stored in the checkpoint)


@dataclass
class LossSection:
    p_mean: float = -1.2
    p_std: float = 1.2


@dataclass
class OptimSection:
    """Adam with linear warm-up over ``warmup_steps`` then ``constant`` or ``cosine`` (down to ``min_lr``)."""

    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    warmup_steps: int = 1000
    schedule: str = "constant"
    min_lr: float = 0.0
    # max global gradient norm; null = off (published: none). The loss is a sum over pixels, so typical norms
    # grow with the patch/image area: pick the value from the grad_norm column of a short run's log.
    grad_clip: float | None = None


@dataclass
class EMASection:
    """EMA of the weights, :math:`\\beta = 0.5^{1/h}` per step with half-life
    :math:`h = \\min(\\text{halflife\\_steps}, \\text{rampup}\\cdot\\text{step})` (EDM's ramp-up; null = none)."""

    halflife_steps: float = 4000.0
    rampup: float | None = 0.05


@dataclass
class RunSection:
    steps: int = 100000
    batch: int = 4                         # whole images per step (whole-image kinds; all ranks together)
    seed: int = 2025                       # training randomness (patches, sigmas, noise, dropout)
    device: str = "auto"                   # auto | cpu | cuda | cuda:N (under torchrun: cuda:LOCAL_RANK)
    precision: str = "fp32"                # fp32 | bf16 (autocast, CUDA only; fp32 on CPU with a warning)
    out: str = "runs/train"
    checkpoint_every: int = 1000
    keep_last: int | None = 3              # checkpoints kept (the newest; latest.json's always); 0 / null = all
    log_every: int = 1
    sample_every: int = 0                  # 0 = no preview samples
    sample_steps: int = 18                 # Heun steps of the preview sampler
    sample_size: int | None = None         # preview image side; None = min(N, 128)
    progress: bool = True


@dataclass
class TrainConfig:
    """Everything a training run needs; load with ``padis_plugin.config.load_config(TrainConfig, path)``.

    A config file must name ``kind`` and ``data.path`` (the defaults are for code building it directly): an
    empty or half-written file must not silently train the published network on the demo data."""

    kind: str = field(default="padis", metadata={"required": True})  # a config file must name it
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    patch: PatchSection = field(default_factory=PatchSection)
    hfs: HFSSection = field(default_factory=HFSSection)
    loss: LossSection = field(default_factory=LossSection)
    optim: OptimSection = field(default_factory=OptimSection)
    ema: EMASection = field(default_factory=EMASection)
    run: RunSection = field(default_factory=RunSection)

    def model_config(self) -> dict:
        return resolve_model_config(self.model.name, **self.model.overrides)

    def image_channels(self) -> int:
        """Image channels C the prior models: ``model.overrides.image_channels`` (default 2); the training images
        must have that many (see :mod:`.data`)."""
        return self.model_config().get(IMAGE_CHANNELS_KEY, DEFAULT_IMAGE_CHANNELS)

    def validate(self, source=None, prefix: str = "") -> None:
        """Cross-field checks; :class:`ConfigError` naming ``source`` and the dotted key."""
        def bad(key, problem):
            raise ConfigError(where(source, f"'{f'{prefix}.{key}' if prefix else key}' {problem}"))

        if self.kind not in KINDS:
            bad("kind", f"must be one of {KINDS}, got {self.kind!r}")
        family = get_family(self.kind)
        try:
            mc = self.model_config()
        except ConfigError as exc:
            bad("model", f"is invalid: {exc}")
        want_in, want_out = family.network_channels(mc.get(IMAGE_CHANNELS_KEY, DEFAULT_IMAGE_CHANNELS))
        if mc["in_channels"] != want_in or mc["out_channels"] != want_out:
            bad("model.name", f"{self.model.name!r} has {mc['in_channels']} inputs / {mc['out_channels']} outputs; "
                              f"kind {self.kind!r} needs {want_in} / {want_out} "
                              f"(e.g. {', '.join(family.model_configs)})")
        if not (math.isfinite(self.model.sigma_data) and self.model.sigma_data > 0):
            bad("model.sigma_data", f"must be a finite number > 0, got {self.model.sigma_data}")
        elif not 1e-6 <= self.model.sigma_data <= 1e6:  # squared in the preconditioning: 1e30 overflows
            bad("model.sigma_data", f"must be in [1e-06, 1e+06], got {self.model.sigma_data:g}")
        if self.data.num_slices is not None and self.data.num_slices < 1:
            bad("data.num_slices", "must be >= 1 or null")
        h = self.hfs
        if family.hfs and h.band_width is not None and (isinstance(h.band_width, bool) or h.band_width < 1):
            bad("hfs.band_width", f"must be an integer >= 1 or null, got {h.band_width!r}")
        p = self.patch
        if family.patches:
            if not p.sizes or not len(p.sizes) == len(p.probs) == len(p.batch):
                bad("patch", "sizes, probs and batch must be non-empty lists of equal length")
            multiple = downsampling_factor(mc)
            for i, s in enumerate(p.sizes):
                if s < 1 or s % multiple:
                    bad(f"patch.sizes.{i}", f"= {s} must be a positive multiple of {multiple} for this network")
            if any(q < 0 for q in p.probs) or abs(sum(p.probs) - 1) > 1e-6:
                bad("patch.probs", f"must be non-negative and sum to 1, got {p.probs} (sum {sum(p.probs):g})")
            if any(b < 1 for b in p.batch):
                bad("patch.batch", "must all be >= 1")
            if p.pad is not None and p.pad < 0:
                bad("patch.pad", "must be >= 0 or null")
            if p.position_convention not in CONVENTIONS:
                bad("patch.position_convention", f"must be one of {CONVENTIONS}")
            if p.inference_patch_size is not None and p.inference_patch_size % multiple:
                bad("patch.inference_patch_size", f"must be a multiple of {multiple}")
        if not 0 <= self.run.seed < 2 ** 63:  # a torch.Generator seed
            bad("run.seed", f"must be in [0, 2**63), got {self.run.seed}")
        o = self.optim
        if not 0 < o.lr <= 1:  # Adam's step is about lr per weight: above 1 it only diverges
            bad("optim.lr", f"must be in (0, 1], got {o.lr}")
        if len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
            bad("optim.betas", "must be two numbers in [0, 1)")
        if not o.eps > 0 or o.warmup_steps < 0 or not 0 <= o.min_lr <= o.lr:
            bad("optim", "needs eps > 0, warmup_steps >= 0 and 0 <= min_lr <= lr")
        if o.schedule not in ("constant", "cosine"):
            bad("optim.schedule", f"must be 'constant' or 'cosine', got {o.schedule!r}")
        if o.grad_clip is not None and not o.grad_clip > 0:
            bad("optim.grad_clip", "must be > 0 or null")
        if not self.ema.halflife_steps > 0 or (self.ema.rampup is not None and not self.ema.rampup > 0):
            bad("ema", "needs halflife_steps > 0 and rampup > 0 or null")
        r = self.run
        for key in ("steps", "batch", "checkpoint_every", "log_every", "sample_steps"):
            if getattr(r, key) < 1:
                bad(f"run.{key}", "must be >= 1")
        if r.sample_every < 0:
            bad("run.sample_every", "must be >= 0")
        if r.keep_last is not None and (isinstance(r.keep_last, bool) or r.keep_last < 0):
            bad("run.keep_last", f"must be >= 0 (0 or null: keep every checkpoint), got {r.keep_last!r}")
        if r.precision not in ("fp32", "bf16"):
            bad("run.precision", f"must be 'fp32' or 'bf16', got {r.precision!r}")
        if not (r.device in ("auto", "cpu", "cuda") or r.device.startswith("cuda:")):
            bad("run.device", f"must be auto, cpu, cuda or cuda:N, got {r.device!r}")


def learning_rate(step: int, optim: OptimSection, total_steps: int) -> float:
    """Learning rate of (0-based) ``step``: linear warm-up to ``lr`` over ``warmup_steps``, then constant or
    cosine decay to ``min_lr`` at ``total_steps`` (unlike the published ramp, the warm-up ends)."""
    if step < optim.warmup_steps:
        return optim.lr * (step + 1) / optim.warmup_steps
    if optim.schedule == "constant":
        return optim.lr
    t = (step - optim.warmup_steps) / max(total_steps - optim.warmup_steps, 1)
    return optim.min_lr + 0.5 * (optim.lr - optim.min_lr) * (1 + math.cos(math.pi * min(t, 1.0)))


def ema_beta(step: int, ema: EMASection) -> float:
    """EMA decay after ``step`` completed steps: :math:`0.5^{1/h}`, :math:`h = \\min(h_{max}, r\\,\\text{step})`."""
    h = ema.halflife_steps if ema.rampup is None else min(ema.halflife_steps, ema.rampup * step)
    return 0.5 ** (1.0 / max(h, 1e-8))
