"""The prior a solver samples with: the parameters that choose it (:class:`PriorChoice`, mixed into each
algorithm's parameters) and the frozen deepinv denoiser they give."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from ..errors import PadisError

CHECKPOINTS_OWN = {"default": "the checkpoint's own"}


@dataclass
class PatchSettings:
    """Patch size P, pad M and chunk size of the PaDIS denoiser (``None``: what its checkpoint was trained for)."""

    patch_size: int | None = field(default=None, metadata=CHECKPOINTS_OWN)
    pad: int | None = field(default=None, metadata=CHECKPOINTS_OWN)
    max_batch: int | None = field(default=None, metadata=CHECKPOINTS_OWN)


def load_denoiser(kind: str, checkpoint, device, **overrides):
    """The denoiser of prior family ``kind`` (:mod:`padis_plugin.prior.families`: ``padis``, ``edm``, ``hfs``,
    ``patch-hfs``) in eval mode with frozen weights (gradients flow to the image only, never to the weights)."""
    from ..prior.families import get_family  # prior/ sits below solvers/

    den = get_family(kind).denoiser.from_pretrained(checkpoint, device=device, **overrides)
    return den.to(device).eval().requires_grad_(False)


_PATCH_KEYS = ("patch_size", "pad", "max_batch")
_PADIS_KEYS = ("position_convention", "canvas_pad")


@dataclass
class PriorChoice(PatchSettings):
    """The prior of a solver named by its algorithm (``dds``, ``dps``, ...): ``checkpoint``'s kind picks the
    family, and each family reads its own settings from it (patch size and pad of a patch prior, band width of
    an HFS prior); a setting given here overrides the checkpoint's, and one the family has not is refused."""

    checkpoint: str | None = field(default=None, metadata={"default": "the shipped PaDIS prior for the data's grid"})
    position_convention: Literal["image", "published"] | None = field(default=None, metadata=CHECKPOINTS_OWN)
    canvas_pad: int | None = field(default=None, metadata=CHECKPOINTS_OWN)
    band_width: int | None = field(default=None, metadata=CHECKPOINTS_OWN)

    FAMILIES: ClassVar[tuple[str, ...]] = ("padis", "edm")   # the prior families the algorithm samples with

    def check(self, bad):
        """Settings the checkpoint's family does not have, named at parse time (with the config key)."""
        if self.checkpoint is None:
            return
        try:
            family = self.family()
        except PadisError as exc:  # a missing or damaged checkpoint (CheckpointError), a bad name
            bad.add("checkpoint", f": {exc}")
            return
        if family.name not in self.FAMILIES:
            hfs = " (trained with noise only in the high band)" if all("hfs" in f for f in self.FAMILIES) else ""
            bad.add("checkpoint", f": {self.checkpoint!r} is a {family.name!r} prior; this algorithm samples with "
                                  f"{' / '.join(self.FAMILIES)} priors{hfs}")
        for key in _PATCH_KEYS + _PADIS_KEYS:
            if getattr(self, key) is not None and (not family.patches or (key in _PADIS_KEYS and family.hfs)):
                bad.add(key, f"is a patch setting of the PaDIS prior; {self.checkpoint!r} is a {family.name!r} "
                             "prior without it: remove it")
        if self.band_width is not None and not family.hfs:
            bad.add("band_width", f"is a setting of HFS priors; {self.checkpoint!r} is a {family.name!r} prior")
        elif self.band_width is not None and self.band_width < 1:
            bad.add("band_width", f"must be >= 1 or null, got {self.band_width}")

    def family(self):
        """The checkpoint's family (its JSON read and checked once per parameters object: ``check``, the factory
        and ``load`` all ask)."""
        from ..prior.families import checkpoint_family, get_family

        known = self.__dict__.get("_family")
        if known is None or known[0] != self.checkpoint:
            found = checkpoint_family(self.checkpoint) if self.checkpoint else get_family(self.FAMILIES[0])
            self.__dict__["_family"] = known = (self.checkpoint, found)
        return known[1]

    def load(self, device, with_patches: bool = True):
        """The chosen prior's denoiser (frozen, eval); ``with_patches=False`` leaves patch size, pad and chunk
        to the sampler (VE-DPS tiles itself)."""
        family = self.family()
        keys = (_PATCH_KEYS if with_patches else ()) + (_PADIS_KEYS if not family.hfs else ())
        overrides = {k: getattr(self, k) for k in keys if getattr(self, k) is not None} if family.patches else {}
        return load_denoiser(family.name, self.checkpoint or family.default_checkpoint, device, **overrides)
