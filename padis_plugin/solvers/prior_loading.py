"""The prior a solver factory samples with: a shipped name or checkpoint path -> a frozen deepinv denoiser,
and the parameters that choose it (mixed into each factory's parameters dataclass)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

CHECKPOINTS_OWN = {"default": "the checkpoint's own"}
PATCH_SETTING = ("is a patch setting of the PaDIS prior; the whole-image EDM denoiser has no patches (one network "
                 "call per image): remove it, or use a padis-* solver")


@dataclass
class PaDISCheckpoint:
    checkpoint: str = "padis-s25"         # a shipped prior's name or a checkpoint path


@dataclass
class PatchSettings:
    """Patch size P, pad M and chunk size of the PaDIS denoiser (``None``: what its checkpoint was trained for)."""

    patch_size: int | None = field(default=None, metadata=CHECKPOINTS_OWN)
    pad: int | None = field(default=None, metadata=CHECKPOINTS_OWN)
    max_batch: int | None = field(default=None, metadata=CHECKPOINTS_OWN)


@dataclass
class PaDISPrior(PatchSettings, PaDISCheckpoint):
    """The PaDIS prior; ``position_convention`` and ``canvas_pad``: see :class:`~padis_plugin.prior.PaDISDenoiser`."""

    position_convention: Literal["image", "published"] | None = field(default=None, metadata=CHECKPOINTS_OWN)
    canvas_pad: int | None = field(default=None, metadata=CHECKPOINTS_OWN)

    def prior_settings(self) -> dict:
        """The settings given (not ``None``), as :meth:`PaDISDenoiser.from_pretrained` overrides."""
        keys = ("patch_size", "pad", "max_batch", "position_convention", "canvas_pad")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


@dataclass
class EDMPrior:
    """The whole-image FastMRI-EDM prior: a checkpoint, no patch settings (named as such when given)."""

    checkpoint: str = "edm-s25"
    NOT_HERE: ClassVar[dict] = {key: PATCH_SETTING for key in ("patch_size", "pad", "max_batch")}


def load_denoiser(kind: str, checkpoint, device, **overrides):
    """The denoiser of prior family ``kind`` (:mod:`padis_plugin.prior.families`: ``padis``, ``edm``, ``hfs``,
    ``patch-hfs``) in eval mode with frozen weights (gradients flow to the image only, never to the weights)."""
    from ..prior.families import get_family  # prior/ sits below solvers/

    den = get_family(kind).denoiser.from_pretrained(checkpoint, device=device, **overrides)
    return den.to(device).eval().requires_grad_(False)


def prior_from_params(kind: str, p, device):
    """The denoiser of a factory's parsed params ``p``: its ``checkpoint`` (``None``: the family's shipped
    default) and, for the patch families, the patch settings given."""
    from ..prior.families import get_family

    family = get_family(kind)
    overrides = p.prior_settings() if family.patches and hasattr(p, "prior_settings") else {}
    return load_denoiser(kind, p.checkpoint or family.default_checkpoint, device, **overrides)
