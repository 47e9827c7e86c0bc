"""Prior families: what a checkpoint's ``"kind"`` stands for, in one table.

A family names its denoiser class (``from_pretrained``, ``config``), its training objective (a loss class of
:mod:`padis_plugin.train.loss` with the one signature ``loss(net, images, generator, shared=None) -> (n,)``,
named by import path because ``train/`` sits above ``prior/``), the model configs it trains, whether it works on
patches (the ``patch:`` section of a training config applies, and its network takes 2 positional channels
besides the image channels: :meth:`PriorFamily.network_channels`), whether it has a high-frequency band (the
``hfs:`` section applies), its preview sampler and its shipped default checkpoint. Loading a checkpoint,
validating a training config, building the loss and the preview, and the solvers' prior loading all read this
table; adding a family adds one row here.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from ..checkpoints import read_checkpoint_config
from ..errors import CheckpointError, ConfigError, where
from .denoiser import EDMDenoiser, PaDISDenoiser, check_checkpoint_json, resolve_checkpoint
from .hfs import HFSDenoiser, PatchHFSDenoiser
from .preview import edm_heun_sample, hfs_heun_sample


@dataclass(frozen=True)
class PriorFamily:
    name: str                      # the checkpoint JSON's "kind" and a training config's ``kind``
    denoiser: type                 # deepinv Denoiser with from_pretrained / save_pretrained / config
    loss: str                      # "module:Class" of the training objective
    model_configs: tuple[str, ...]  # names in padis_plugin.prior.network.MODEL_CONFIGS it is meant for
    patches: bool                  # trains and denoises P x P patches with positional channels
    hfs: bool                      # noise only in the high band (a band width in its config)
    preview: Callable              # preview sampler(denoiser, shape, steps, generator, device=, reference=)
    shipped: tuple[tuple[int, str], ...] = ()  # (grid N, shipped prior trained on N x N), a solver's default

    @property
    def default_checkpoint(self) -> str | None:
        """The shipped prior a solver uses when given none and no grid: the first (128 where there is one)."""
        return self.shipped[0][1] if self.shipped else None

    def shipped_for(self, grid: int | None) -> str | None:
        """The shipped prior trained on the grid nearest ``grid`` (None: :attr:`default_checkpoint`)."""
        if grid is None or not self.shipped:
            return self.default_checkpoint
        return min(self.shipped, key=lambda s: abs(s[0] - int(grid)))[1]

    def network_channels(self, image_channels: int = 2) -> tuple[int, int]:
        """(inputs, outputs) of this family's network for C = ``image_channels``: (C + 2, C) with the positional
        channels of patches, (C, C) otherwise."""
        return image_channels + (2 if self.patches else 0), image_channels

    def loss_class(self) -> type:
        module, name = self.loss.split(":")
        return getattr(importlib.import_module(module), name)


_PATCH_CONFIGS = ("padis-paper", "padis-small", "padis-tiny")
_IMAGE_CONFIGS = ("edm-paper", "edm-small", "edm-tiny")
FAMILIES: dict[str, PriorFamily] = {f.name: f for f in (
    PriorFamily("padis", PaDISDenoiser, "padis_plugin.train.loss:PatchEDMLoss", _PATCH_CONFIGS, True, False,
                edm_heun_sample, ((128, "padis-s25"), (256, "padis-s25-256"))),
    PriorFamily("edm", EDMDenoiser, "padis_plugin.train.loss:EDMLoss", _IMAGE_CONFIGS, False, False,
                edm_heun_sample, ((128, "edm-s25"), (256, "edm-s25-256"))),
    PriorFamily("hfs", HFSDenoiser, "padis_plugin.train.loss:HFSLoss", _IMAGE_CONFIGS, False, True,
                hfs_heun_sample, ((256, "hfs-s25-256"),)),
    PriorFamily("patch-hfs", PatchHFSDenoiser, "padis_plugin.train.loss:PatchHFSLoss", _PATCH_CONFIGS, True, True,
                hfs_heun_sample, ((256, "patch-hfs-s25-256"),)),
)}


def get_family(name) -> PriorFamily:
    """The family ``name``; :class:`ConfigError` naming the known ones otherwise."""
    if name not in FAMILIES:
        raise ConfigError(f"unknown prior family {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name]


def checkpoint_family(path_or_name) -> PriorFamily:
    """The family of a checkpoint (path or shipped name), from its JSON's ``"kind"``, checked against the rest
    of the JSON (:func:`~padis_plugin.prior.denoiser.check_checkpoint_json`: a kind that disagrees with the model
    config's channels or with the band settings is refused naming both kinds; the tensors are checked on load)."""
    path = resolve_checkpoint(path_or_name)
    config = read_checkpoint_config(path)
    kind = config.get("kind")
    if kind not in FAMILIES:
        raise CheckpointError(where(path, f"unknown checkpoint kind {kind!r} (expected one of {sorted(FAMILIES)})"))
    check_checkpoint_json(config, FAMILIES[kind].denoiser, path.with_suffix(".json"))
    return FAMILIES[kind]


def load_prior(path_or_name, device=None, **overrides):
    """Load a checkpoint (path or shipped name) as its family's denoiser; ``overrides`` replace its settings."""
    return checkpoint_family(path_or_name).denoiser.from_pretrained(resolve_checkpoint(path_or_name),
                                                                    device=device, **overrides)
