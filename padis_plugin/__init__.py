"""padis_plugin: patch-based diffusion priors (PaDIS-MRI) for multi-coil MRI, built on DeepInverse."""
__version__ = "0.1.0"
