"""Prior families (PaDIS patch prior, whole-image EDM prior, HFS and patch-HFS): DDPM++ network, EDM
preconditioning, patch tiling, the high-frequency projector, denoisers and the family registry. Priors model C
image channels, C even (2: one complex MRI image); :mod:`.channels` fixes their complex layout."""
from padis_plugin.prior.channels import complex_to_real_channels, real_channels_to_complex
from padis_plugin.prior.denoiser import EDMDenoiser, PaDISDenoiser
from padis_plugin.prior.families import FAMILIES, PriorFamily, get_family, load_prior
from padis_plugin.prior.hfs import HFSDenoiser, PatchHFSDenoiser, high_pass, low_pass
from padis_plugin.prior.network import MODEL_CONFIGS, build_unet, count_parameters
from padis_plugin.prior.precond import EDMPrecond

__all__ = ["PaDISDenoiser", "EDMDenoiser", "HFSDenoiser", "PatchHFSDenoiser", "load_prior", "EDMPrecond",
           "MODEL_CONFIGS", "build_unet", "count_parameters", "FAMILIES", "PriorFamily", "get_family", "high_pass",
           "low_pass", "complex_to_real_channels", "real_channels_to_complex"]
