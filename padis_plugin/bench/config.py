"""The benchmark's config schema, :class:`BenchConfig` and its sections (see ``configs/*.yaml`` for commented
examples), loaded by the engine of :mod:`.config` (``from_dict`` / ``load_config``)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Problems, join_key
from ..data.source import BUNDLED_DEMO
from ..errors import ConfigError, where

MAX_R = 16.0
ACQUISITION_KINDS = ("cartesian", "poisson")  # padis_plugin.acquisition.KINDS (tested equal)
TASKS = ("slice", "mrf")  # what an item is: a reconstructed image, or quantitative MRF maps


@dataclass
class DataConfig:
    """Which slices: a prepared HDF5 file, a fastMRI file/folder (prepared on the fly, cached) or
    ``bundled-demo``; then filters."""

    path: str = BUNDLED_DEMO
    contrasts: list[str] | None = None
    patients: list[str] | None = None
    ids: list[str] | None = None
    max_slices: int | None = None
    size: int = 384                      # grid N when a raw fastMRI source is prepared on the fly
    slices: str | int | list[int] = "centre"   # raw sources: "centre", "all", an index or indices per volume
    cache_dir: str | None = None         # prepared-file cache for raw sources (default ~/.cache/padis_plugin)

    def validate(self, source, prefix):
        bad = Problems(source, prefix)
        if self.max_slices is not None and self.max_slices < 1:
            bad.add("max_slices", "must be >= 1")
        bad.raise_any()


@dataclass
class AcquisitionConfig:
    """How each slice is scanned: a registered acquisition ``kind`` (:data:`padis_plugin.acquisition.KINDS`:
    ``cartesian``, 1-D random lines, the paper's; ``poisson``, 2-D variable-density Poisson-disc with an ACS
    square) at each of ``accelerations``, one scan per mask seed; ``file`` replaces generation by a stored
    (H, W) or (K, H, W) ``.npy`` array whose K masks are addressed by the seeds (indices).

    The section was first called ``masks:``; that name is still read (it means the same section, Cartesian by
    default), and hashes are taken under it, so results made before the rename keep their keys.

    ``acs_lines`` unset (``None``): the paper's 24 lines at W = 384, scaled to the data's grid
    (``round(24 * W / 384)``, 8 at 128), so a minimal config runs on any grid.
    ``acs_grid``: the grid width ``acs_lines`` refers to; on another grid width W the ACS block is scaled to
    ``round(acs_lines * W / acs_grid)`` lines (so a config written for 384 x 384 data, e.g. 20 ACS lines,
    also runs on the 128 x 128 bundled demo). ``None``: ``acs_lines`` is absolute.
    (:func:`padis_plugin.acquisition.masks.acs_lines_for` is the rule.)

    ``kind`` is left out of :func:`to_dict` at its default, so the configs, hashes and item fingerprints of
    Cartesian benchmarks are those they had before masks had a kind."""

    kind: str = field(default="cartesian", metadata={"omit_default": True})
    accelerations: list[float] = field(default_factory=lambda: [7.0])
    acs_lines: int | None = None
    acs_grid: int | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    file: str | None = None

    def acs_for(self, width: int) -> int:
        """ACS lines on a grid of ``width`` phase-encode lines."""
        from ..acquisition.masks import acs_lines_for  # here, not at the top: masks imports torch
        return acs_lines_for(width, self.acs_lines, self.acs_grid)

    def validate(self, source, prefix):
        bad = Problems(source, prefix)
        if not self.accelerations:
            bad.add("accelerations", "must not be empty")
        for i, r in enumerate(self.accelerations):
            if not 1.0 <= r <= MAX_R:
                bad.add(f"accelerations.{i}", f": R={r:g} is outside [1, {MAX_R:g}]")
        if len(set(self.accelerations)) != len(self.accelerations):
            bad.add("accelerations", "has duplicates")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            bad.add("seeds", "must be a non-empty list of distinct seeds")
        elif any(not 0 <= s < 2 ** 32 for s in self.seeds):  # a mask generator's seed (numpy, sigpy)
            bad.add("seeds", f"must be in [0, 2**32), got {[s for s in self.seeds if not 0 <= s < 2 ** 32]}")
        if self.acs_lines is not None and self.acs_lines < 0:
            bad.add("acs_lines", "must be >= 0")
        if self.acs_grid is not None and self.acs_grid < 1:
            bad.add("acs_grid", "must be >= 1")
        if self.kind not in ACQUISITION_KINDS:
            bad.add("kind", f": unknown acquisition kind {self.kind!r} (known: {', '.join(ACQUISITION_KINDS)})")
        elif self.file and self.kind != "cartesian":
            bad.add("kind", f": 'file' gives the masks; leave kind unset, not {self.kind!r}")
        bad.raise_any()


@dataclass
class SolverEntry:
    """One row of the benchmark: a registered solver name, its parameters, a display label (unique) and
    optionally the training-set size S of its prior (shown as a column)."""

    name: str
    label: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    training_size: int | None = None

    @property
    def display(self) -> str:
        return self.label or self.name

    def validate(self, source, prefix):
        # checked here, with the rest of the config, so a typo is not hidden behind a later data or mask error
        from ..solvers.registry import available_solvers, available_text  # entry-point names only: no solver imported
        if self.name not in available_solvers():
            raise ConfigError(where(source, f"'{join_key(prefix, 'name')}': unknown solver '{self.name}' "
                                            f"({available_text()})"))


@dataclass
class UncertaintyConfig:
    """Paper Table 1: reconstruct each slice under ``seeds`` masks (a count -> seeds 0..n-1, or a list)
    and report pixel-wise standard deviation maps and their mean inside the brain (Otsu on |ref|)."""

    enabled: bool = False
    seeds: int | list[int] = 10
    solvers: list[str] | None = None      # labels; None = every solver
    crop: list[int] | None = None         # (h, w) centre crop before the brain mask, e.g. [384, 320]
    vmax: float | None = None             # heatmap colour limit (None: per-figure max)

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def validate(self, source, prefix):
        bad = Problems(source, prefix)
        if not self.seed_list or len(set(self.seed_list)) != len(self.seed_list):
            bad.add("seeds", "must give at least one distinct seed")
        elif self.enabled and len(self.seed_list) < 2:
            bad.add("seeds", ": a standard deviation needs >= 2 masks")
        _check_crop(bad, self.crop)
        bad.raise_any()


def _check_crop(bad: Problems, crop) -> None:
    """A centre crop ``[h, w]`` of two positive sizes, or None."""
    if crop is None:
        return
    if len(crop) != 2:
        bad.add("crop", "must be [h, w]")
    elif any(c < 1 for c in crop):
        bad.add("crop", f"must be [h, w] with h, w >= 1, got {list(crop)}")


@dataclass
class ReuseSource:
    """Finished items of another results folder to take over instead of recomputing them: ``solvers`` maps a
    label of this config to the label it has there; an item is taken only when its solver entry (less the
    label), data, mask and seed settings are the same there, so it would be computed identically here."""

    dir: str
    solvers: dict[str, str] = field(default_factory=dict)


@dataclass
class OutputConfig:
    dir: str | None = None                # default results/<name>
    figures: bool = True                  # one PNG per slice and R (first mask seed)
    save_recons: bool = True              # recons/*.npy (complex64), needed by figures and uncertainty
    reuse_from: list[ReuseSource] = field(default_factory=list)


@dataclass
class BenchConfig:
    """A benchmark: solvers x slices x accelerations x mask seeds -> metrics, tables, figures."""

    name: str = "bench"
    # slice: images from a prepared MRI file (PSNR / SSIM / NRMSE); mrf: quantitative maps from an MR-fingerprinting
    # file of padis-simulate --mrf (T1 / T2 errors), whose acquisition is the file's own (no masks section)
    task: str = field(default="slice", metadata={"omit_default": True})
    seed: int = 0                         # global seed of every solver's torch.Generator
    device: str = "auto"                  # auto | cpu | cuda | cuda:K (auto: cuda:LOCAL_RANK if available)
    data: DataConfig = field(default_factory=DataConfig)
    acquisition: AcquisitionConfig = field(default_factory=AcquisitionConfig, metadata={"former": "masks"})
    solvers: list[SolverEntry] = field(default_factory=list)
    crop: list[int] | None = None         # metrics centre crop (h, w); None: full image (paper)
    reference: str | None = None          # label that every other solver is compared against
    pairs: list[list[str]] = field(default_factory=list)   # [[label A, label B], ...] -> A - B
    uncertainty: UncertaintyConfig = field(default_factory=UncertaintyConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def validate(self, source, prefix=""):
        bad = Problems(source, prefix)
        if not 0 <= self.seed < 2 ** 63:
            bad.add("seed", f"must be in [0, 2**63), got {self.seed}")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name) or ".." in self.name:
            bad.add("name", f"must be a plain name (letters, digits, '.', '_', '-'), got {self.name!r}: it names "
                            "the default results folder results/<name>")
        if not self.solvers:
            bad.add("solvers", "must list at least one solver")
        labels = [s.display for s in self.solvers]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            bad.add("solvers", f": duplicate label(s) {', '.join(dup)}; give each a distinct 'label'")
        known = set(labels)
        if self.reference is not None and self.reference not in known:
            bad.add("reference", f": unknown solver label '{self.reference}' (labels: {', '.join(labels)})")
        for i, pair in enumerate(self.pairs):
            if len(pair) != 2:
                bad.add(f"pairs.{i}", "must be [label A, label B]")
            for label in pair if len(pair) == 2 else ():
                if label not in known:
                    bad.add(f"pairs.{i}", f": unknown solver label '{label}' (labels: {', '.join(labels)})")
        for label in self.uncertainty.solvers or ():
            if label not in known:
                bad.add("uncertainty.solvers", f": unknown solver label '{label}'")
        _check_crop(bad, self.crop)
        if self.task not in TASKS:
            bad.add("task", f": unknown task {self.task!r} (known: {', '.join(TASKS)})")
        if self.task == "mrf":
            if self.acquisition != AcquisitionConfig():
                bad.add("acquisition", ": an mrf task measures what its file holds (the spiral of padis-simulate --mrf); "
                                 "remove the acquisition section")
            if self.crop is not None or self.uncertainty.enabled:
                bad.add("task", ": 'crop' and 'uncertainty' apply to the slice task only")
        bad.raise_any()

    @property
    def output_dir(self) -> Path:
        return Path(self.output.dir) if self.output.dir else Path("results") / self.name
