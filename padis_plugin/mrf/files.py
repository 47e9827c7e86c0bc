"""Simulated MRF data files (``padis-mrf-1``): many slices of one acquisition setup in one HDF5 file.

Layout::

    /  attrs format = "padis-mrf-1", setup (JSON of MRFSetup.to_dict()), sequence (JSON of FISPSequence.to_dict())
    /trajectory/points   (frames, samples, 2) float32, radians (finufft convention, :mod:`.spiral`)
    /trajectory/dcf      (samples,) float32 density compensation (Nyquist cells)
    /trajectory/angles   (frames,) float64 rotation of each frame (optional; attrs interleaves, density_power, order)
    /basis               (rank, frames) complex64 subspace V the k-space was simulated with (optional)
    /items/<id>/kspace   (1, frames, samples) complex64 RAW k-space (not weighted by sqrt(dcf))
    /items/<id>/t1, t2   (H, W) float32 seconds;  pd (H, W) complex64;  mask (H, W) bool;  tissue (H, W) uint8
                         (optional); attrs patient, contrast, seed

:func:`write_mrf_file` writes one (:func:`simulate_mrf_file` simulates the k-space first). :class:`MRFFile` reads
it back as measurement problems: ``y = physics.weight(kspace)`` with the operator of :class:`.physics.MRFPhysics`
on the setup's dictionary subspace, and the reference TSMI recomputed from the maps.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import torch

from ..atomic import hdf5_file
from ..errors import ConfigError, DataError, where
from ..progress import progress_bar
from .maps import QuantitativeMaps
from .sequence import FISPSequence
from .simulate import MRFSetup, item_generator, reference_tsmi, simulate_item
from .spiral import MRFTrajectory

FORMAT = "padis-mrf-1"
_MAPS = ("t1", "t2", "pd", "mask")
_BASIS_RTOL = 1e-3   # the dictionary's subspace must be the one the k-space was simulated with


def _check_item(path, item_id, setup: MRFSetup, maps, kspace) -> None:
    if not isinstance(item_id, str) or not item_id or "/" in item_id or item_id in (".", ".."):
        raise DataError(where(path, f"item id {item_id!r}: must be a non-empty string without '/'"))
    if not isinstance(maps, QuantitativeMaps) or maps.t1.shape != (setup.matrix,) * 2:
        shape = maps.t1.shape if isinstance(maps, QuantitativeMaps) else type(maps).__name__
        raise DataError(where(path, f"item {item_id}: maps must be QuantitativeMaps {setup.matrix} x {setup.matrix}, "
                                    f"got {shape}"))
    if tuple(kspace.shape) != (1, setup.frames, setup.samples):
        raise DataError(where(path, f"item {item_id}: kspace must be (1, {setup.frames}, {setup.samples}), got "
                                    f"{tuple(kspace.shape)}"))


def write_mrf_file(path, setup: MRFSetup, sequence: FISPSequence, trajectory: MRFTrajectory, items, *,
                   basis=None, total: int | None = None, progress: bool = True) -> Path:
    """Write ``items`` = iterable of (id, patient, contrast, maps, kspace (1, frames, samples), seed) atomically
    (temporary file beside ``path``, renamed at the end: a failure leaves nothing). ``basis`` (rank, frames): the
    subspace of the k-space, stored so readers can check it; ``total``: item count for the progress bar."""
    path = Path(path)
    if sequence.frames != setup.frames or trajectory.points.shape[:2] != (setup.frames, setup.samples) \
            or trajectory.matrix != setup.matrix:
        raise ConfigError(where(path, f"sequence ({sequence.frames} frames) / trajectory "
                                      f"({trajectory.points.shape[:2]}, matrix {trajectory.matrix}) disagree with "
                                      f"the setup {setup.to_dict()}"))
    with hdf5_file(path) as f:
        f.attrs["format"] = FORMAT
        f.attrs["setup"] = json.dumps(setup.to_dict())
        f.attrs["sequence"] = json.dumps(sequence.to_dict())
        g = f.create_group("trajectory")
        g["points"] = np.asarray(trajectory.points, dtype=np.float32)
        g["dcf"] = np.asarray(trajectory.dcf, dtype=np.float32)
        g["angles"] = np.asarray(trajectory.angles, dtype=np.float64)
        g.attrs.update(interleaves=trajectory.interleaves, density_power=trajectory.density_power,
                       order=trajectory.order)
        if basis is not None:
            f["basis"] = torch.as_tensor(basis).detach().cpu().numpy().astype(np.complex64)
        group = f.create_group("items", track_order=True)          # ids come back in the order written
        for item_id, patient, contrast, maps, kspace, seed in progress_bar(items, total=total, desc="MRF items",
                                                                          unit="slice", enabled=progress):
            kspace = kspace.detach().cpu().numpy() if torch.is_tensor(kspace) else np.asarray(kspace)
            _check_item(path, item_id, setup, maps, kspace)
            if item_id in group:
                raise DataError(where(path, f"item id {item_id!r} given twice"))
            it = group.create_group(item_id)
            it["kspace"] = kspace.astype(np.complex64)
            it["t1"], it["t2"] = maps.t1.astype(np.float32), maps.t2.astype(np.float32)
            it["pd"], it["mask"] = maps.pd.astype(np.complex64), maps.mask.astype(bool)
            if maps.tissue is not None:
                it["tissue"] = maps.tissue.astype(np.uint8)
            it.attrs.update(patient=str(patient), contrast="" if contrast is None else str(contrast), seed=int(seed))
        if not len(group):
            raise DataError(where(path, "no items to write"))
    return path


def simulate_mrf_file(path, setup: MRFSetup, entries, *, total: int | None = None, cache_dir=None,
                      progress: bool = True, device=None):
    """Simulate and write a ``padis-mrf-1`` file of ``entries`` = iterable of
    (id, patient, contrast, maps, seed): each item's noise from :func:`item_generator` (``seed``), on the subspace
    of the setup's dictionary (built, or read from ``cache_dir``). Returns the path."""
    from .dictionary import MRFDictionary, tissue_grid

    sequence, trajectory = setup.sequence(), setup.trajectory()
    basis = MRFDictionary.cached(sequence, setup.rank, tissue_grid(target_atoms=setup.atoms), cache_dir).basis
    basis = basis.to(device) if device is not None else basis

    def items():
        for item_id, patient, contrast, maps, seed in entries:
            kspace, _ = simulate_item(maps, sequence, basis, trajectory, setup.snr_db,
                                      item_generator(seed, basis.device))
            yield item_id, patient, contrast, maps, kspace, seed

    return write_mrf_file(path, setup, sequence, trajectory, items(), basis=basis, total=total, progress=progress)


class MRFFile:
    """Reader of a ``padis-mrf-1`` file (module docstring), optionally restricted to some ``patients`` or ``ids``.

    Everything is checked on opening; a bad file raises :class:`DataError` naming it and the problem.
    """

    def __init__(self, path, patients=None, ids=None):
        self.path = Path(path)
        self._dictionaries: dict = {}
        with self._open() as f:
            if f.attrs.get("format") != FORMAT:
                raise DataError(where(self.path, f"not a {FORMAT} file (format attribute "
                                                 f"{f.attrs.get('format')!r})"))
            self.setup = self._json(f, "setup", MRFSetup.from_dict)
            self.sequence = self._json(f, "sequence", FISPSequence.from_dict)
            self.trajectory = self._trajectory(f)
            self.basis = torch.from_numpy(self._dataset(f, "basis", (self.setup.rank, self.setup.frames))[()]) \
                if "basis" in f else None
            self._meta = {i: self._item(f, i) for i in self._group(f, "items")}
        if self.sequence.frames != self.setup.frames:
            raise DataError(where(self.path, f"the sequence has {self.sequence.frames} frames, the setup "
                                             f"{self.setup.frames}"))
        chosen = list(self._meta)
        if ids is not None:
            unknown = [i for i in ids if i not in self._meta]
            if unknown:
                raise DataError(where(self.path, f"no item(s) {unknown[:5]} (the file holds {len(self._meta)})"))
            wanted = set(ids)
            chosen = [i for i in chosen if i in wanted]
        if patients is not None:
            wanted = {str(p) for p in patients}
            chosen = [i for i in chosen if self._meta[i]["patient"] in wanted]
        if not chosen:
            raise DataError(where(self.path, f"no items of patients {sorted(patients or [])} / ids {ids}"))
        self.ids = chosen

    # ------------------------------------------------------------------ reading and checking
    def _open(self):
        try:
            return h5py.File(self.path, "r")
        except (OSError, ValueError) as e:
            raise DataError(where(self.path, f"not a readable HDF5 file ({' '.join(str(e).split())})")) from None

    def _json(self, f, key, parse):
        try:
            return parse(json.loads(f.attrs[key]))
        except KeyError:
            raise DataError(where(self.path, f"missing the root attribute {key!r}")) from None
        except (ValueError, TypeError) as e:   # JSONDecodeError and ConfigError are ValueErrors
            raise DataError(where(self.path, f"attribute {key!r}: {e}")) from None

    def _group(self, f, name):
        g = f.get(name)
        if not isinstance(g, h5py.Group):
            raise DataError(where(self.path, f"missing group {name!r}"))
        return g

    def _dataset(self, f, name, shape):
        d = f.get(name)
        if not isinstance(d, h5py.Dataset):
            raise DataError(where(self.path, f"missing dataset {name!r}"))
        if shape is not None and d.shape != tuple(shape):
            raise DataError(where(self.path, f"dataset {name!r} has shape {d.shape}, expected {tuple(shape)}"))
        return d

    def _trajectory(self, f) -> MRFTrajectory:
        s = self.setup
        points = self._dataset(f, "trajectory/points", (s.frames, s.samples, 2))[()].astype(np.float32)
        dcf = self._dataset(f, "trajectory/dcf", (s.samples,))[()].astype(np.float32)
        g = f["trajectory"]
        if "angles" in g:
            angles = self._dataset(f, "trajectory/angles", (s.frames,))[()].astype(np.float64)
        else:  # rotations of one interleaf: the angle of each frame's last point relative to frame 0's
            end = np.arctan2(points[:, -1, 1], points[:, -1, 0]).astype(np.float64)
            angles = np.mod(end - end[0], 2 * np.pi)
        return MRFTrajectory(points=points, dcf=dcf, angles=angles, matrix=s.matrix,
                             interleaves=int(g.attrs.get("interleaves", s.interleaves)),
                             density_power=float(g.attrs.get("density_power", s.density_power)),
                             order=str(g.attrs.get("order", "sequential")))

    def _item(self, f, item_id) -> dict:
        hw = (self.setup.matrix,) * 2
        if not isinstance(f["items"][item_id], h5py.Group):
            raise DataError(where(self.path, f"items/{item_id} is not a group"))
        self._dataset(f, f"items/{item_id}/kspace", (1, self.setup.frames, self.setup.samples))
        for key in _MAPS + (("tissue",) if "tissue" in f[f"items/{item_id}"] else ()):
            self._dataset(f, f"items/{item_id}/{key}", hw)
        a = f[f"items/{item_id}"].attrs
        return {"id": item_id, "patient": str(a.get("patient", "")), "contrast": str(a.get("contrast", "")),
                "seed": int(a.get("seed", 0))}

    def _check_id(self, item_id) -> None:
        if item_id not in self.ids:
            raise DataError(where(self.path, f"no item {item_id!r} (of {len(self.ids)})"))

    # ------------------------------------------------------------------ items
    def __len__(self) -> int:
        return len(self.ids)

    def meta(self, item_id) -> dict:
        """``{"id", "patient", "contrast", "seed"}`` of one item."""
        self._check_id(item_id)
        return dict(self._meta[item_id])

    def maps(self, item_id) -> QuantitativeMaps:
        """The item's reference maps (T1 / T2 seconds, complex PD, mask, tissue labels if stored)."""
        self._check_id(item_id)
        with self._open() as f:
            g = f[f"items/{item_id}"]
            return QuantitativeMaps(g["t1"][()], g["t2"][()], g["pd"][()], g["mask"][()].astype(bool),
                                    g["tissue"][()] if "tissue" in g else None)

    def kspace(self, item_id) -> torch.Tensor:
        """Raw (unweighted) k-space, complex64 (1, frames, samples)."""
        self._check_id(item_id)
        with self._open() as f:
            return torch.from_numpy(f[f"items/{item_id}/kspace"][()].astype(np.complex64))

    # ------------------------------------------------------------------ operator and problems
    def dictionary(self, cache_dir=None):
        """The setup's dictionary (cached on disk and here); its subspace is checked against the stored one."""
        from .dictionary import MRFDictionary, tissue_grid

        key = str(cache_dir)
        if key not in self._dictionaries:
            d = MRFDictionary.cached(self.sequence, self.setup.rank, tissue_grid(target_atoms=self.setup.atoms),
                                     cache_dir)
            if self.basis is not None:
                err = float((d.basis - self.basis).abs().norm() / self.basis.abs().norm())
                if err > _BASIS_RTOL:
                    raise DataError(where(self.path, f"the data were simulated with another subspace than this "
                                                     f"setup's dictionary (relative difference {err:.2g})"))
            self._dictionaries[key] = d
        return self._dictionaries[key]

    def physics(self, device=None, cache_dir=None):
        """:class:`.physics.MRFPhysics` on the dictionary's subspace, with ``physics.dictionary`` set (on
        ``device``)."""
        from .physics import MRFPhysics

        d = self.dictionary(cache_dir)
        physics = MRFPhysics.from_trajectory(d.basis, self.trajectory).to(device)
        physics.dictionary = d.to(device) if device is not None else d
        return physics

    def problem(self, item_id, device=None, cache_dir=None):
        """The item as a :class:`~padis_plugin.acquisition.problem_types.Problem`: y = sqrt(w) raw k-space
        (1, 1, frames, samples), the physics, x_ref = the reference TSMI (1, rank, H, W) recomputed from the maps,
        and ``info.extra`` = {"maps", "id", "patient", "contrast", "seed"}; ``info.pattern`` the sample density."""
        from ..acquisition.problem_types import Problem, ProblemInfo

        physics = self.physics(device, cache_dir)
        maps = self.maps(item_id)
        y = physics.weight(self.kspace(item_id).to(physics.basis.device)[None])
        x_ref = reference_tsmi(maps, self.sequence, physics.basis)[None]
        return Problem(y, physics, x_ref, ProblemInfo(pattern=self.density(), extra={"maps": maps,
                                                                                     **self.meta(item_id)}))

    def density(self) -> np.ndarray:
        """(matrix, matrix) float32 count of k-space samples per Nyquist cell (a picture of the sampling)."""
        n, p = self.setup.matrix, self.trajectory.points.reshape(-1, 2)
        edges = np.linspace(-np.pi, np.pi, n + 1)
        return np.histogram2d(p[:, 0], p[:, 1], bins=(edges, edges))[0].astype(np.float32)
