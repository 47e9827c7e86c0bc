"""Make the MRF data of the protocol split from the brain-slice collection (developer tool).

For every T1 / T2 / FLAIR slice of the split's patients: quantitative maps (tissue segmentation,
``padis_plugin.mrf.maps.maps_for_split``) at --matrix x --matrix, then

* ``val`` and ``test``: ``<out>/val.h5`` and ``<out>/test.h5`` (``padis-mrf-1`` files, one item per slice: raw
  spiral k-space at --snr-db and the maps; each slice's noise seeded by a stable hash of its id and --seed);
* ``train_pool``: ``<out>/train_tsmi.npz``, an image-array training file (``padis_plugin.train.image_arrays``:
  keys ``images`` (N, 2 rank, H, W) float32 in the interleaved real/imaginary layout of
  ``padis_plugin.prior.channels``, ``ids``, ``patient_ids``) of the reference TSMI of every slice, each divided by
  the 99th percentile of its voxel norms ||X(voxel)||_2 inside the mask (key ``scale`` (N,) holds that divisor;
  key ``setup`` the MRFSetup as JSON).

Example (from the repository root):
    python scripts/make_mrf_data.py --source ../shared/data/brain-slices/brain_slices.h5 \\
        --split configs/protocol_split.yaml --out outputs/mrf128 --matrix 128
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from padis_plugin.atomic import atomic_path
from padis_plugin.cli._common import check_output_file, run_cli
from padis_plugin.data.simulate import slice_seed
from padis_plugin.errors import DataError, where
from padis_plugin.mrf.dictionary import MRFDictionary, tissue_grid
from padis_plugin.mrf.files import simulate_mrf_file
from padis_plugin.mrf.maps import maps_for_split
from padis_plugin.mrf.simulate import MRFSetup, reference_tsmi
from padis_plugin.prior.channels import complex_to_real_channels
from padis_plugin.progress import progress_bar
from padis_plugin.train.image_arrays import read_image_arrays

PARTS = ("val", "test", "train_pool")
PERCENTILE = 99.0


def _contrasts(source) -> dict:
    """Slice id -> contrast attribute of the collection."""
    try:
        with h5py.File(source, "r") as f:
            return {name: str(ds.attrs.get("contrast", "")) for name, ds in f["slices"].items()}
    except (OSError, KeyError) as e:
        raise DataError(where(source, f"cannot read the slices' contrasts ({e})")) from None


def _entries(args, part: str) -> list:
    """(id, patient, contrast, maps, seed) of the part's slices (the first --max-slices, if given)."""
    chosen = maps_for_split(args.source, args.split, part, size=args.matrix, seed=args.seed)[:args.max_slices]
    contrast = _contrasts(args.source)
    return [(i, p, contrast.get(i, ""), m, slice_seed(args.seed, i)) for i, p, m in chosen]


def tsmi_training_arrays(entries, setup: MRFSetup, basis, progress: bool = True) -> dict:
    """Arrays of ``train_tsmi.npz`` (module docstring) for ``entries`` = (id, patient, contrast, maps, seed)."""
    sequence = setup.sequence()
    images, scales = [], []
    for item_id, _, _, maps, _ in progress_bar(entries, desc="train TSMI", unit="slice", enabled=progress):
        x = reference_tsmi(maps, sequence, basis)                                  # (rank, H, W)
        norms = x.abs().square().sum(0).sqrt()[torch.from_numpy(maps.mask).to(x.device)]
        scale = float(np.percentile(norms.cpu().numpy(), PERCENTILE))
        if not scale > 0:
            raise DataError(f"{item_id}: the reference TSMI is zero inside the mask")
        images.append(complex_to_real_channels(x[None] / scale)[0].cpu().numpy().astype(np.float32))
        scales.append(scale)
    return {"images": np.stack(images), "ids": np.array([e[0] for e in entries]),
            "patient_ids": np.array([e[1] for e in entries]), "scale": np.array(scales, dtype=np.float32),
            "setup": np.array(json.dumps(setup.to_dict()))}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--source", required=True, help="brain_slices.h5 of the collection")
    p.add_argument("--split", required=True, help="protocol split YAML (train_pool / val / test patients)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="parts to make")
    p.add_argument("--max-slices", type=int, default=None, help="first N slices of each part only (a check)")
    p.add_argument("--seed", type=int, default=0, help="seed of the maps' variation and the noise")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--cache-dir", default=None, help="dictionary cache (default: $PADIS_CACHE/mrf)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    defaults = MRFSetup()
    for name, value in defaults.to_dict().items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value, help=f"MRFSetup.{name}")
    return p


def _run(args) -> int:
    setup = MRFSetup(**{k: getattr(args, k) for k in MRFSetup().to_dict()})
    names = {"val": "val.h5", "test": "test.h5", "train_pool": "train_tsmi.npz"}
    outs = {part: check_output_file(args.out / names[part], args.overwrite) for part in args.parts}
    basis = MRFDictionary.cached(setup.sequence(), setup.rank, tissue_grid(target_atoms=setup.atoms),
                                 args.cache_dir).basis
    for part in args.parts:
        t0 = time.perf_counter()
        entries = _entries(args, part)
        t_maps = time.perf_counter() - t0
        if part == "train_pool":
            arrays = tsmi_training_arrays(entries, setup, basis, progress=not args.no_progress)
            with atomic_path(outs[part], suffix=".npz") as tmp:
                np.savez(tmp, **arrays)
            read_image_arrays(outs[part])                                  # what padis-train will read
        else:
            simulate_mrf_file(outs[part], setup, entries, total=len(entries), cache_dir=args.cache_dir,
                              progress=not args.no_progress)
        total = time.perf_counter() - t0
        print(f"{outs[part]}: {len(entries)} slices; {total:.1f} s ({total / len(entries):.2f} s per slice, of which "
              f"{t_maps / len(entries):.2f} s maps)")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_slices is not None and args.max_slices < 1:
        build_parser().error("--max-slices must be >= 1")
    return run_cli(lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
