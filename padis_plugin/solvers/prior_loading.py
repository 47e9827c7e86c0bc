"""The prior a solver factory samples with: a shipped name or checkpoint path -> a frozen deepinv denoiser."""
from __future__ import annotations

from ..errors import ConfigError

# Keys every prior-based factory accepts to choose and configure its denoiser.
PATCH_KEYS = {"patch_size": int, "pad": int, "max_batch": int}
PADIS_PRIOR_KEYS = {"checkpoint": str, **PATCH_KEYS, "position_convention": ("image", "published"),
                    "canvas_pad": int}
EDM_PRIOR_KEYS = {"checkpoint": str}
DEFAULT_CHECKPOINT = {"padis": "padis-s25", "edm": "edm-s25"}


def reject_patch_keys(name: str, params) -> None:
    """Patch settings given to a whole-image (EDM) solver: a ConfigError, never silently dropped."""
    given = sorted(set(params) & PATCH_KEYS.keys()) if isinstance(params, dict) else []  # else: typed_params
    if given:
        what = "is a patch setting" if len(given) == 1 else "are patch settings"
        raise ConfigError(f"solver '{name}': {', '.join(given)} {what} of the PaDIS prior; the whole-image EDM "
                          "denoiser has no patches (one network call per image): remove it, or use a padis-* solver")


def load_denoiser(kind: str, checkpoint, device, **overrides):
    """``PaDISDenoiser`` (kind ``padis``) or ``EDMDenoiser`` (``edm``) in eval mode with frozen weights
    (gradients flow to the image only, never to the weights)."""
    from ..prior import EDMDenoiser, PaDISDenoiser  # prior/ sits below solvers/

    cls = PaDISDenoiser if kind == "padis" else EDMDenoiser
    den = cls.from_pretrained(checkpoint, device=device, **overrides)
    return den.to(device).eval().requires_grad_(False)


def prior_from_params(kind: str, p: dict, device):
    """The denoiser named by a factory's checked params (``checkpoint`` and, for PaDIS, the patch settings;
    ``None`` patch settings keep the checkpoint's own)."""
    settings = PADIS_PRIOR_KEYS.keys() - {"checkpoint"} if kind == "padis" else ()
    overrides = {k: p[k] for k in settings if k in p}
    return load_denoiser(kind, p.get("checkpoint", DEFAULT_CHECKPOINT[kind]), device, **overrides)
