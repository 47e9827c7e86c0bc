"""MR fingerprinting (MRF-DiPh, Mayo et al., MICCAI 2025): quantitative T1 / T2 / PD maps from undersampled spiral
MRF data, with a diffusion prior on the subspace-compressed time-series images (TSMI).

- :mod:`.sequence`: the IR-FISP flip-angle / TR train (Jiang et al., MRM 2015, by default);
- :mod:`.epg`: extended-phase-graph simulation of the fingerprints;
- :mod:`.dictionary`: the (T1, T2) dictionary, its temporal SVD subspace and dictionary matching;
- :mod:`.spiral`: variable-density spiral interleaves and their density compensation;
- :mod:`.nufft`: the non-uniform FFT (finufft) as a torch autograd function;
- :mod:`.physics`: the subspace MRF operator as a deepinv ``LinearPhysics``;
- :mod:`.maps`: quantitative maps from brain slices (tissue segmentation) and analytic phantoms.
"""
