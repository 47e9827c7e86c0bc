"""PaDIS patch prior and whole-image EDM prior: DDPM++ network, EDM preconditioning, patch tiling, denoisers."""
from padis_plugin.prior.denoiser import EDMDenoiser, PaDISDenoiser, load_prior
from padis_plugin.prior.network import MODEL_CONFIGS, build_unet, count_parameters
from padis_plugin.prior.precond import EDMPrecond

__all__ = ["PaDISDenoiser", "EDMDenoiser", "load_prior", "EDMPrecond", "MODEL_CONFIGS", "build_unet",
           "count_parameters"]
