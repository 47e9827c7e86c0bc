"""EDM preconditioning (Karras et al. 2022, Table 1) around a raw network, with unscaled extra channels.

.. math::

    D_\\theta(x, \\sigma) = c_{skip}(\\sigma)\\, x + c_{out}(\\sigma)\\,
        F_\\theta\\big([c_{in}(\\sigma)\\, x,\\ \\text{pos}],\\ c_{noise}(\\sigma)\\big)

with :math:`c_{skip} = \\sigma_d^2/(\\sigma^2+\\sigma_d^2)`, :math:`c_{out} = \\sigma\\sigma_d/\\sqrt{\\sigma^2+\\sigma_d^2}`,
:math:`c_{in} = 1/\\sqrt{\\sigma^2+\\sigma_d^2}`, :math:`c_{noise} = \\ln(\\sigma)/4`. Only the image channels are
scaled by :math:`c_{in}`; positional channels (PaDIS) are concatenated as they are.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from padis_plugin.errors import ConfigError
from padis_plugin.prior.channels import DEFAULT_IMAGE_CHANNELS, check_image_channels


def check_sigma_data(value) -> float:
    """``sigma_data`` as a finite float > 0; :class:`~padis_plugin.errors.ConfigError` otherwise."""
    try:
        if isinstance(value, (bool, str)):
            raise TypeError
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"sigma_data must be a positive finite number, got {value!r}") from None
    if not math.isfinite(out) or out <= 0:
        raise ConfigError(f"sigma_data must be a positive finite number, got {value!r}")
    if not 1e-6 <= out <= 1e6:  # EDM's preconditioning squares it: 1e30 overflows every step to NaN
        raise ConfigError(f"sigma_data must be in [1e-06, 1e+06], got {value!r}")
    return out


class EDMPrecond(nn.Module):
    """EDM-preconditioned denoiser :math:`D_\\theta(x, \\sigma, \\text{pos})` on patches or whole images.

    :param unet: raw network ``unet(x, c_noise (B,))`` with ``image_channels + pos channels`` inputs and
        ``image_channels`` outputs (e.g. :class:`padis_plugin.prior.network.DDPMpp`).
    :param float sigma_data: :math:`\\sigma_d`, the data standard deviation assumed by EDM (0.5 as published).
    :param int image_channels: number of image channels C (even; layout in :mod:`padis_plugin.prior.channels`).
        None: the network's ``image_channels`` (its model config's; 2 for a network that has none).
    """

    def __init__(self, unet: nn.Module, sigma_data: float = 0.5, image_channels: int | None = None):
        super().__init__()
        self.unet = unet
        self.sigma_data = check_sigma_data(sigma_data)
        if image_channels is None:
            image_channels = getattr(unet, "image_channels", DEFAULT_IMAGE_CHANNELS)
        self.image_channels = check_image_channels(image_channels)

    def forward(self, x_img: torch.Tensor, sigma, pos: torch.Tensor | None = None) -> torch.Tensor:
        """Denoise ``x_img`` (B, C, h, w) at noise level ``sigma`` (float, 0-d or (B,)); ``pos`` (B, 2, h, w) or None
        -> (B, C, h, w)."""
        if x_img.shape[1] != self.image_channels:
            raise ValueError(f"expected {self.image_channels} image channels, got {x_img.shape[1]}")
        dtype = x_img.dtype
        # float32 as EDM computes, or float64 when the network is (``module.double()``)
        param = next(self.unet.parameters(), None)
        work = torch.float64 if param is not None and param.dtype == torch.float64 else torch.float32
        x = x_img.to(work)
        sigma = torch.as_tensor(sigma, dtype=work, device=x.device).reshape(-1)
        # sigma = 0 would give c_noise = -inf (NaN embedding); a tiny floor gives the right limit D(x) = x.
        sigma = sigma.expand(x.shape[0]).reshape(-1, 1, 1, 1).clamp_min(1e-20)
        sd2 = self.sigma_data ** 2
        c_skip = sd2 / (sigma ** 2 + sd2)
        c_out = sigma * self.sigma_data / (sigma ** 2 + sd2).sqrt()
        c_in = 1.0 / (sigma ** 2 + sd2).sqrt()
        c_noise = sigma.log().reshape(-1) / 4
        net_in = c_in * x
        if pos is not None:
            net_in = torch.cat([net_in, pos.to(net_in).expand(x.shape[0], -1, -1, -1)], dim=1)
        F_x = self.unet(net_in, c_noise)
        return (c_skip * x + c_out * F_x.to(work)).to(dtype)
