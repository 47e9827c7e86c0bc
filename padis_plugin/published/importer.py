"""Import a published PaDIS-MRI or FastMRI-EDM ``network-snapshot.pkl`` as a package checkpoint.

The snapshot is read by the restricted unpickler (nothing in it runs), its ``SongUNet`` mapped onto our network
tensor by tensor, and the result written as ``STEM.safetensors`` + ``STEM.json``, so ``load_prior(STEM)``,
``PaDISDenoiser.from_pretrained(STEM)`` / ``EDMDenoiser.from_pretrained(STEM)`` and every solver's
``checkpoint:`` take it like a shipped prior. The JSON records where it came from (file name, SHA-256, classes,
constructor arguments).
"""
from __future__ import annotations

from pathlib import Path

from ..checkpoints import checkpoint_paths
from ..data.files import sha256_file
from ..errors import CheckpointError, where
from ..prior.precond import EDMPrecond
from .songunet import import_network
from .unpickler import SnapshotError, read_snapshot

#: Inference settings of the published PaDIS-MRI sampler (P = M = 64); positions as the published code made them
#: (its training canvas and inference canvas differ: see the README's "What differs" section).
PADIS_SETTINGS = {"patch_size": 64, "pad": 64, "position_convention": "published", "canvas_pad": None,
                  "max_batch": 16}


def default_stem(path) -> Path:
    """``dir/network-snapshot-001451.pkl`` -> ``dir/network-snapshot-001451``."""
    p = Path(path)
    return p.with_suffix("") if p.suffix == ".pkl" else p


def import_published(path, out=None, overwrite: bool = False):
    """Import the snapshot ``path`` -> the written checkpoint's ``.safetensors`` path.

    :param path: an EDM-style ``network-snapshot-*.pkl`` (``EDMPrecond`` or ``Patch_EDMPrecond`` around a
        ``SongUNet`` of the ``ddpmpp`` arch).
    :param out: output stem (default: ``path`` without ``.pkl``); ``.safetensors`` and ``.json`` are added.
    :param bool overwrite: replace an existing checkpoint at ``out``.
    :raises CheckpointError: (a :class:`~.unpickler.SnapshotError`) for a refused global, a damaged file, a
        network that is not supported or does not map; nothing is written then.
    """
    src = Path(path)
    if not src.is_file():
        raise CheckpointError(where(src, "no such snapshot file"))
    st_path, js_path = checkpoint_paths(default_stem(src) if out is None else out)
    existing = [p for p in (st_path, js_path) if p.exists()]
    if existing and not overwrite:
        raise CheckpointError(where(existing[0], "already exists; pass --overwrite (overwrite=True) to replace it"))
    net = read_snapshot(src)
    try:
        imported = import_network(net)
    except SnapshotError as e:
        raise SnapshotError(where(src, str(e))) from None
    from ..prior.families import get_family  # the family's denoiser writes the checkpoint

    precond = EDMPrecond(imported.unet, sigma_data=imported.sigma_data, image_channels=2)
    family = get_family(imported.kind)
    settings = dict(PADIS_SETTINGS) if imported.kind == "padis" else {}
    denoiser = family.denoiser(precond, **settings)
    provenance = {"source": src.name, "sha256": sha256_file(src), "class_name": imported.class_name,
                  "model_class": "SongUNet", "init_kwargs": imported.init_kwargs}
    if imported.kind == "padis":
        provenance["position_convention"] = "published"
    try:
        return denoiser.save_pretrained(st_path.with_suffix(""), extra_config={"published": provenance})
    except BaseException:  # the tensors written but not their JSON: leave no half checkpoint behind
        for p in (st_path, js_path):
            p.unlink(missing_ok=True)
        raise
