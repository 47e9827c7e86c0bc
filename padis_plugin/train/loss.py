"""EDM denoising score-matching losses: whole images (:class:`EDMLoss`) and random patches (:class:`PatchEDMLoss`).

Both follow Karras et al. (2022), Eq. 2 with the EDM choices of Table 1:

.. math::

    \\ln\\sigma \\sim \\mathcal{N}(P_{mean}, P_{std}^2),\\qquad
    \\lambda(\\sigma) = \\frac{\\sigma^2 + \\sigma_d^2}{(\\sigma\\,\\sigma_d)^2},\\qquad
    \\ell = \\lambda(\\sigma)\\, \\lVert D_\\theta(y + \\sigma n, \\sigma) - y \\rVert_2^2,\\quad n \\sim \\mathcal{N}(0, I)

with :math:`n` drawn independently on the real and imaginary channels (per-channel std :math:`\\sigma`, the
published convention). Reduction: each call returns the per-sample loss, **summed over pixels and both
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

from ..prior.patches import patch_positions


def sample_sigma(n: int, generator: torch.Generator, p_mean: float = -1.2, p_std: float = 1.2,
                 device=None) -> torch.Tensor:
    """(n,) noise levels with :math:`\\ln\\sigma \\sim \\mathcal{N}(P_{mean}, P_{std}^2)`."""
    device = generator.device if device is None else device
    return (p_mean + p_std * torch.randn(n, generator=generator, device=device)).exp()


def edm_weight(sigma: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    """EDM loss weight :math:`\\lambda(\\sigma) = (\\sigma^2+\\sigma_d^2)/(\\sigma\\sigma_d)^2`."""
    return (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2


def _denoising_loss(net, y, sigma, generator, sigma_data, pos=None) -> torch.Tensor:
    """Per-sample :math:`\\lambda(\\sigma)\\lVert D(y + \\sigma n, \\sigma, pos) - y\\rVert^2` summed over (C, H, W)."""
    noise = torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)
    s = sigma.reshape(-1, 1, 1, 1)
    denoised = net(y + s * noise, sigma, pos) if pos is not None else net(y + s * noise, sigma)
    return edm_weight(sigma, sigma_data) * (denoised.float() - y).square().sum(dim=(1, 2, 3))


class EDMLoss(nn.Module):
    """EDM loss on whole images (the paper's FastMRI-EDM baseline).

    ``loss(net, images (B, 2, H, W), generator) -> (B,)``; ``net(x, sigma (B,))`` is an EDM-preconditioned
    denoiser (:class:`padis_plugin.prior.precond.EDMPrecond`).
    """

    def __init__(self, p_mean: float = -1.2, p_std: float = 1.2, sigma_data: float = 0.5):
        super().__init__()
        self.p_mean, self.p_std, self.sigma_data = float(p_mean), float(p_std), float(sigma_data)

    def forward(self, net, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        sigma = sample_sigma(images.shape[0], generator, self.p_mean, self.p_std, images.device)
        return _denoising_loss(net, images, sigma, generator, self.sigma_data)


class PatchEDMLoss(nn.Module):
    """EDM loss on random positioned patches of zero-padded images (PaDIS-MRI training).

    :param patch_sizes: candidate patch sizes P (published 16, 32, 64).
    :param probs: probability of each size per step (published 0.2, 0.3, 0.5; must sum to 1).
    :param batch_sizes: patches per step for each size (published 256, 128, 64).
    :param pad: zero padding of every image side; ``None`` means N // 4 (published 96 for N = 384).
    :param position_convention: ``"image"`` (image-relative, default) or ``"published"`` (linspace over the
        padded canvas); see :mod:`padis_plugin.prior.patches`. Inference must use the same one.

    A step is ``p, n = loss.draw_patch_size(shared_generator)`` then ``loss(net, images, generator, p, n)``:
    the size is drawn apart so that all DDP ranks can share it while positions and noise differ per rank.
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

    def pad_for(self, image_size: int) -> int:
        """Zero padding used for images of side ``image_size``."""
        return image_size // 4 if self.pad is None else self.pad

    def draw_patch_size(self, generator: torch.Generator) -> tuple[int, int]:
        """Draw (patch size, number of patches) for one step with the configured probabilities."""
        k = int(torch.multinomial(self.probs, 1, generator=generator))
        return self.patch_sizes[k], self.batch_sizes[k]

    def sample_patches(self, images: torch.Tensor, patch_size: int, n: int, generator: torch.Generator):
        """``n`` random P x P patches of the zero-padded ``images`` (S, 2, H, W) -> (patches, positions).

        Image index and top-left canvas corner are uniform (inclusive bounds ``[0, H + 2 pad - P]``). The patch
        is gathered from the unpadded images with clamped indices and zeroed outside them, so no padded copy of
        the training set is ever made.
        """
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
        patches = images[idx[:, None, None, None], torch.arange(C, device=dev)[None, :, None, None],
                         rows.clamp(0, H - 1)[:, None, :, None], cols.clamp(0, W - 1)[:, None, None, :]]
        patches = patches * inside[:, None].to(patches.dtype)
        pos = patch_positions(top, left, P, (H, W), convention=self.position_convention, canvas_pad=pad,
                              dtype=images.dtype, device=dev)
        return patches, pos

    def forward(self, net, images: torch.Tensor, generator: torch.Generator, patch_size: int,
                n: int) -> torch.Tensor:
        """Per-patch loss (n,) for ``n`` patches of size ``patch_size``; ``net(x, sigma, pos)``."""
        y, pos = self.sample_patches(images, patch_size, n, generator)
        sigma = sample_sigma(n, generator, self.p_mean, self.p_std, images.device)
        return _denoising_loss(net, y, sigma, generator, self.sigma_data, pos)
