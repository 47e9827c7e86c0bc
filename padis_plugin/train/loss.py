"""Training objectives of the prior families (:mod:`padis_plugin.prior.families`): EDM denoising score matching
on whole images (:class:`EDMLoss`) and random patches (:class:`PatchEDMLoss`), and their HFS forms with noise in
the high band only (:class:`HFSLoss`, :class:`PatchHFSLoss`).

Every objective has one call, ``loss(net, images, generator, shared=None) -> (n,)``: ``images`` is the whole
training set (S, C, N, N) (C image channels, 2 for MRI slices); the loss draws its samples (images or patches),
noise levels and noise from ``generator`` and what every DDP rank must agree on (the patch size) from ``shared``
(default ``generator``).
``Loss.from_config(cfg, image_size, world)`` builds it from a :class:`~padis_plugin.train.config.TrainConfig`;
``checkpoint_config()`` gives the denoiser settings its checkpoint JSON holds and ``preview_settings(size)``
those of the preview denoiser.

Both follow Karras et al. (2022), Eq. 2 with the EDM choices of Table 1:

.. math::

    \\ln\\sigma \\sim \\mathcal{N}(P_{mean}, P_{std}^2),\\qquad
    \\lambda(\\sigma) = \\frac{\\sigma^2 + \\sigma_d^2}{(\\sigma\\,\\sigma_d)^2},\\qquad
    \\ell = \\lambda(\\sigma)\\, \\lVert D_\\theta(y + \\sigma n, \\sigma) - y \\rVert_2^2,\\quad n \\sim \\mathcal{N}(0, I)

with :math:`n` drawn independently on every (real or imaginary) channel (per-channel std :math:`\\sigma`, the
published convention). Reduction: each call returns the per-sample loss, **summed over pixels and all
channels**; the training loop averages it over the samples (patches or images) of the step.
Small patches therefore contribute smaller sums than large ones, exactly as in the published code.

PaDIS patches (Hu et al. 2024): each step uses one patch size P drawn with the configured probabilities;
every patch comes from a uniformly drawn training image zero-padded by ``pad`` (default N/4) at a uniform
top-left corner on the padded canvas (so patches may lie partly or wholly in the padding), together with its
positional channels from :func:`padis_plugin.prior.patches.patch_positions` (shared with inference).
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..prior.hfs import check_band_width, high_pass
from ..prior.network import downsampling_factor
from ..prior.patches import patch_positions


def sample_sigma(n: int, generator: torch.Generator, p_mean: float = -1.2, p_std: float = 1.2,
                 device=None) -> torch.Tensor:
    """(n,) noise levels with :math:`\\ln\\sigma \\sim \\mathcal{N}(P_{mean}, P_{std}^2)`."""
    device = generator.device if device is None else device
    return (p_mean + p_std * torch.randn(n, generator=generator, device=device)).exp()


def edm_weight(sigma: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    """EDM loss weight :math:`\\lambda(\\sigma) = (\\sigma^2+\\sigma_d^2)/(\\sigma\\sigma_d)^2`."""
    return (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2


def _denoising_loss(net, y, sigma, noise, sigma_data, pos=None, project=None) -> torch.Tensor:
    r"""Per-sample :math:`\lambda(\sigma)\lVert R(D(y + \sigma n, \sigma, pos) - y)\rVert^2` summed over (C, H, W);
    ``project`` is :math:`R` (None: the identity)."""
    s = sigma.reshape(-1, 1, 1, 1)
    denoised = net(y + s * noise, sigma, pos) if pos is not None else net(y + s * noise, sigma)
    err = denoised.float() - y
    if project is not None:
        err = project(err)
    return edm_weight(sigma, sigma_data) * err.square().sum(dim=(1, 2, 3))


def _randn(shape, generator, like):
    return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)


class EDMLoss(nn.Module):
    """EDM loss on whole images (the paper's FastMRI-EDM baseline).

    ``loss(net, images (S, C, H, W), generator) -> (B,)``; ``net(x, sigma (B,))`` is an EDM-preconditioned
    denoiser (:class:`padis_plugin.prior.precond.EDMPrecond`). ``batch``: draw that many of the images per call
    (uniformly, with replacement); None: use every image given once.
    """

    last_patch_size = None

    def __init__(self, p_mean: float = -1.2, p_std: float = 1.2, sigma_data: float = 0.5, batch: int | None = None):
        super().__init__()
        self.p_mean, self.p_std, self.sigma_data = float(p_mean), float(p_std), float(sigma_data)
        self.batch = None if batch is None else int(batch)

    @classmethod
    def _checked_args(cls, cfg, image_size: int, world: int) -> dict:
        multiple = downsampling_factor(cfg.model_config())
        if image_size % multiple:
            raise ConfigError(f"'model.name': images of side {image_size} are not a multiple of {multiple}")
        if cfg.run.batch % world:
            raise ConfigError(f"'run.batch' = {cfg.run.batch} must be divisible by the {world} processes")
        return dict(p_mean=cfg.loss.p_mean, p_std=cfg.loss.p_std, sigma_data=cfg.model.sigma_data,
                    batch=cfg.run.batch // world)

    @classmethod
    def from_config(cls, cfg, image_size: int, world: int = 1) -> "EDMLoss":
        return cls(**cls._checked_args(cfg, image_size, world))

    def checkpoint_config(self) -> dict:
        return {}

    def preview_settings(self, size: int) -> dict:
        return {}

    def _draw_images(self, images, generator):
        if self.batch is None:
            return images
        return images[torch.randint(images.shape[0], (self.batch,), generator=generator, device=images.device)]

    def forward(self, net, images: torch.Tensor, generator: torch.Generator, shared=None) -> torch.Tensor:
        y = self._draw_images(images, generator)
        sigma = sample_sigma(y.shape[0], generator, self.p_mean, self.p_std, y.device)
        return _denoising_loss(net, y, sigma, _randn(y.shape, generator, y), self.sigma_data)


class HFSLoss(EDMLoss):
    r"""HFS loss on whole images (VE form of HFS-SDE): EDM's :math:`\sigma` distribution, preconditioning and
    weighting, noise only in the high band and the error measured there only,

    .. math::

        \ell = \lambda(\sigma)\,\lVert Q\,(D_	heta(y + \sigma Q n, \sigma) - y)
Vert_2^2,

    so the output's low band gets no gradient. ``keep_low_band`` (stored in the checkpoint) makes the
    denoiser return :math:`P x + Q D`; it leaves this loss unchanged, since :math:`P(x_t - y) = 0`.

    :param int band_width: low-band columns :math:`m_{lf}` (:mod:`padis_plugin.prior.hfs`).
    """

    def __init__(self, p_mean=-1.2, p_std=1.2, sigma_data=0.5, batch=None, band_width: int = 16,
                 keep_low_band: bool = False):
        super().__init__(p_mean, p_std, sigma_data, batch)
        self.band_width, self.keep_low_band = int(band_width), bool(keep_low_band)

    @classmethod
    def from_config(cls, cfg, image_size: int, world: int = 1) -> "HFSLoss":
        return cls(**cls._checked_args(cfg, image_size, world),
                   band_width=check_band_width(cfg.hfs.band_width, image_size), keep_low_band=cfg.hfs.keep_low_band)

    def checkpoint_config(self) -> dict:
        return {"band_width": self.band_width, "keep_low_band": self.keep_low_band}

    def preview_settings(self, size: int) -> dict:
        return self.checkpoint_config()

    def forward(self, net, images: torch.Tensor, generator: torch.Generator, shared=None) -> torch.Tensor:
        y = self._draw_images(images, generator)
        sigma = sample_sigma(y.shape[0], generator, self.p_mean, self.p_std, y.device)
        noise = high_pass(_randn(y.shape, generator, y), self.band_width)
        return _denoising_loss(net, y, sigma, noise, self.sigma_data,
                               project=lambda e: high_pass(e, self.band_width))
class PatchEDMLoss(nn.Module):
    """EDM loss on random positioned patches of zero-padded images (PaDIS-MRI training).

    :param patch_sizes: candidate patch sizes P (published 16, 32, 64).
    :param probs: probability of each size per step (published 0.2, 0.3, 0.5; must sum to 1).
    :param batch_sizes: patches per step for each size (published 256, 128, 64).
    :param pad: zero padding of every image side; ``None`` means N // 4 (published 96 for N = 384).
    :param position_convention: ``"image"`` (image-relative, default) or ``"published"`` (linspace over the
        padded canvas); see :mod:`padis_plugin.prior.patches`. Inference must use the same one.

    A step is ``loss(net, images, generator, shared)``: the patch size is drawn from ``shared`` (all DDP ranks
    share it) and positions and noise from ``generator`` (per rank); ``patch_size=`` and ``n=`` fix them
    instead. :attr:`last_patch_size` is the size of the last call.
    """

    def __init__(self, patch_sizes=(16, 32, 64), probs=(0.2, 0.3, 0.5), batch_sizes=(256, 128, 64), pad=None,
                 p_mean: float = -1.2, p_std: float = 1.2, sigma_data: float = 0.5,
                 position_convention: str = "image"):
        super().__init__()
        if not (len(patch_sizes) == len(probs) == len(batch_sizes)) or not patch_sizes:
            raise ValueError("patch_sizes, probs and batch_sizes must be non-empty and of equal length")
        self.patch_sizes = [int(p) for p in patch_sizes]
        self.batch_sizes = [int(b) for b in batch_sizes]
        self.probs = torch.tensor([float(p) for p in probs], dtype=torch.float64)
        self.pad = None if pad is None else int(pad)
        self.p_mean, self.p_std, self.sigma_data = float(p_mean), float(p_std), float(sigma_data)
        self.position_convention = position_convention
        self.last_patch_size = None
        self.inference = {}     # checkpoint settings of the denoiser (from_config)
        self.multiple = 1       # the network's downsampling factor (from_config)
        self.total_batch = list(self.batch_sizes)

    @classmethod
    def _checked_args(cls, cfg, image_size: int, world: int) -> dict:
        p = cfg.patch
        pad = image_size // 4 if p.pad is None else p.pad
        if max(p.sizes) > image_size + 2 * pad:
            raise ConfigError(f"'patch.sizes': {max(p.sizes)} exceeds the padded canvas {image_size + 2 * pad}")
        if any(v % world for v in p.batch):
            raise ConfigError(f"'patch.batch' = {p.batch} must be divisible by the {world} processes")
        return dict(patch_sizes=p.sizes, probs=p.probs, batch_sizes=[b // world for b in p.batch], pad=pad,
                    p_mean=cfg.loss.p_mean, p_std=cfg.loss.p_std, sigma_data=cfg.model.sigma_data,
                    position_convention=p.position_convention)

    def _configured(self, cfg) -> "PatchEDMLoss":
        p = cfg.patch
        self.multiple = downsampling_factor(cfg.model_config())
        self.total_batch = list(p.batch)
        self.inference = dict(patch_size=p.inference_patch_size or max(p.sizes), pad=p.inference_pad)
        return self

    @classmethod
    def from_config(cls, cfg, image_size: int, world: int = 1) -> "PatchEDMLoss":
        return cls(**cls._checked_args(cfg, image_size, world))._configured(cfg)

    def checkpoint_config(self) -> dict:
        """Inference settings of the denoiser and the patch training record (``patch_training``)."""
        # canvas_pad None: the "published" linspace spans the inference canvas N + 2M as in the published code;
        # the training canvas is patch_training.pad
        return dict(patch_size=self.inference.get("patch_size", max(self.patch_sizes)),
                    pad=self.inference.get("pad", 64), max_batch=None,
                    position_convention=self.position_convention, canvas_pad=None,
                    patch_training={"sizes": self.patch_sizes, "probs": self.probs.tolist(),
                                    "batch": self.total_batch, "pad": self.pad})

    def preview_settings(self, size: int) -> dict:
        ps = min(max(self.patch_sizes), size)
        ps -= ps % self.multiple
        return dict(patch_size=ps, pad=ps, position_convention=self.position_convention, canvas_pad=self.pad)

    def pad_for(self, image_size: int) -> int:
        """Zero padding used for images of side ``image_size``."""
        return image_size // 4 if self.pad is None else self.pad

    def draw_patch_size(self, generator: torch.Generator) -> tuple[int, int]:
        """Draw (patch size, number of patches) for one step with the configured probabilities."""
        k = int(torch.multinomial(self.probs, 1, generator=generator))
        return self.patch_sizes[k], self.batch_sizes[k]

    def _draw(self, images: torch.Tensor, patch_size: int, n: int, generator: torch.Generator):
        """Image indices, image rows / columns (n, P) (may lie outside) and the inside mask (n, P, P)."""
        S, C, H, W = images.shape
        pad, P, dev = self.pad_for(H), int(patch_size), images.device
        if P > H + 2 * pad or P > W + 2 * pad:
            raise ValueError(f"patch size {P} exceeds the padded canvas {H + 2 * pad} x {W + 2 * pad}")
        idx = torch.randint(S, (n,), generator=generator, device=dev)
        top = torch.randint(H + 2 * pad - P + 1, (n,), generator=generator, device=dev)
        left = torch.randint(W + 2 * pad - P + 1, (n,), generator=generator, device=dev)
        ar = torch.arange(P, device=dev)
        rows = top[:, None] + ar - pad                      # (n, P) image rows (may be outside)
        cols = left[:, None] + ar - pad                     # (n, P) image columns
        inside = (((rows >= 0) & (rows < H))[:, :, None] & ((cols >= 0) & (cols < W))[:, None, :])
        return idx, top, left, rows, cols, inside

    def sample_patches(self, images: torch.Tensor, patch_size: int, n: int, generator: torch.Generator):
        """``n`` random P x P patches of the zero-padded ``images`` (S, C, H, W) -> (patches (n, C, P, P),
        positions (n, 2, P, P)).

        Image index and top-left canvas corner are uniform (inclusive bounds ``[0, H + 2 pad - P]``). The patch
        is gathered from the unpadded images with clamped indices and zeroed outside them, so no padded copy of
        the training set is ever made.
        """
        return self._patches(images, *self._draw(images, patch_size, n, generator))[:2]

    def _patches(self, images, idx, top, left, rows, cols, inside):
        S, C, H, W = images.shape
        dev = images.device
        patches = images[idx[:, None, None, None], torch.arange(C, device=dev)[None, :, None, None],
                         rows.clamp(0, H - 1)[:, None, :, None], cols.clamp(0, W - 1)[:, None, None, :]]
        patches = patches * inside[:, None].to(patches.dtype)
        pos = patch_positions(top, left, rows.shape[1], (H, W), convention=self.position_convention,
                              canvas_pad=self.pad_for(H), dtype=images.dtype, device=dev)
        return patches, pos, rows, cols, inside

    def _noise(self, patches, rows, cols, inside, W, generator):
        """White N(0, 1) noise per channel on every patch (PaDIS)."""
        return _randn(patches.shape, generator, patches)

    def forward(self, net, images: torch.Tensor, generator: torch.Generator, shared=None, *,
                patch_size: int | None = None, n: int | None = None) -> torch.Tensor:
        """Per-patch loss (n,); ``net(x, sigma, pos)``."""
        if patch_size is None:
            patch_size, n = self.draw_patch_size(shared if shared is not None else generator)
        elif n is None:
            n = self.batch_sizes[self.patch_sizes.index(int(patch_size))]
        self.last_patch_size = int(patch_size)
        y, pos, rows, cols, inside = self._patches(images, *self._draw(images, patch_size, n, generator))
        sigma = sample_sigma(n, generator, self.p_mean, self.p_std, images.device)
        noise = self._noise(y, rows, cols, inside, images.shape[-1], generator)
        return _denoising_loss(net, y, sigma, noise, self.sigma_data, pos)


class PatchHFSLoss(PatchEDMLoss):
    r"""PaDIS patch training on HFS-noised images (``patch-hfs``): the noise is :math:`Q n` drawn on the whole
    image grid, then patches are cut and trained exactly as :class:`PatchEDMLoss` (full-patch error, positional
    channels). Inside the image a patch sees :math:`\sigma (Q n)` on its rows (``Q`` acts along the width only,
    so noise on the patch's full-width rows, projected, is exactly :math:`Q n` there); on the zero padding it
    sees white :math:`\sigma n`, as the inference denoiser's noisy pad band (:class:`PaDISDenoiser`).

    :param int band_width: low-band columns :math:`m_{lf}` (:mod:`padis_plugin.prior.hfs`).
    """

    def __init__(self, *args, band_width: int = 16, keep_low_band: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.band_width, self.keep_low_band = int(band_width), bool(keep_low_band)

    @classmethod
    def from_config(cls, cfg, image_size: int, world: int = 1) -> "PatchHFSLoss":
        return cls(**cls._checked_args(cfg, image_size, world), band_width=check_band_width(
            cfg.hfs.band_width, image_size), keep_low_band=cfg.hfs.keep_low_band)._configured(cfg)

    def checkpoint_config(self) -> dict:
        return {**super().checkpoint_config(), "band_width": self.band_width, "keep_low_band": self.keep_low_band}

    def preview_settings(self, size: int) -> dict:
        return {**super().preview_settings(size), "band_width": self.band_width, "keep_low_band": self.keep_low_band}

    def _noise(self, patches, rows, cols, inside, W, generator):
        white = _randn(patches.shape, generator, patches)
        n, C, P, _ = patches.shape
        rows_q = high_pass(_randn((n, C, P, W), generator, patches), self.band_width)   # Q n on the patch rows
        ar = torch.arange(n, device=patches.device)
        hf = rows_q[ar[:, None, None, None], torch.arange(C, device=patches.device)[None, :, None, None],
                    torch.arange(P, device=patches.device)[None, None, :, None],
                    cols.clamp(0, W - 1)[:, None, None, :]]
        return torch.where(inside[:, None], hf, white)
