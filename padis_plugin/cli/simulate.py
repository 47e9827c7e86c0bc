"""``padis-simulate``: real magnitude slices -> simulated fastMRI-format multi-coil files (or raw .npy ingest,
or MR-fingerprinting data from quantitative maps)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ConfigError, where
from ._common import HelpFormatter, OneLineParser, doc_summary, run_cli

_EPILOG = """\
Examples:
  padis-simulate slices.h5 --out sim/ --coils 8 --snr-db 30 --matrix 384
  padis-simulate brain_T2.npy --out sim/ --subject sub01 --contrast T2 --readout-oversampling 2
  padis-simulate slices.h5 --out sim/ --matrix 384 --spacing-mm 0.6 --contrasts T1 FLAIR
  padis-simulate --raw-npy ksp.npy --out raw/ --patient-id p001 --acquisition AXT2 --axes coil,ky,kx
  padis-simulate --mrf maps.npz --out mrf.h5 --matrix 128 --frames 200 --snr-db 40 --seed 0

SNR: 20*log10(mean |coil image| over the object / complex noise std), on the noiseless coil images.
Output: <OUT>/<subject>_<contrast>.h5, one volume per subject and contrast; patient_id = subject without
a __studyK suffix. Both fastmri.data.SliceDataset and deepinv.datasets.FastMRISliceDataset read it.

Raw k-space: padis-simulate --raw-npy ksp.npy --out DIR [--patient-id ID] [--acquisition AXT1]
[--axes coil,ky,kx] converts already acquired (possibly undersampled) k-space instead of simulating:
H = readout (kx), W = phase encode (ky); the sampling pattern is stored and the zero-filled RSS target is
marked as not ground truth.

MR fingerprinting: padis-simulate --mrf MAPS.npz --out FILE.h5 (or --mrf-phantom: one analytic phantom)
simulates single-coil spiral IR-FISP data of each map (keys t1, t2 in seconds, pd, optional mask; (N, H, W) or
(H, W)), resampled to --matrix (default 128), item ids <file stem>:<index>. Fingerprints are simulated at each
voxel's own T1 / T2 and compressed to the --rank subspace of a dictionary of about --atoms (T1, T2) pairs; the
k-space is stored unweighted. MRF SNR: 20*log10(RMS of the noiseless k-space / complex noise std).
"""


def _matrix(text: str):
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"matrix must be N or HxW, got {text!r}") from None
    if len(values) not in (1, 2) or min(values) < 4 or max(values) > 2048:
        raise argparse.ArgumentTypeError(f"matrix must be N or HxW with sides in [4, 2048], got {text!r}")
    return values[0] if len(values) == 1 else tuple(values)


# MRFSetup fields as options (matrix and snr_db are shared with the multi-coil simulation)
_MRF_OPTIONS = (("frames", 200, int, "MRF: time frames (TRs of the Jiang IR-FISP train)"),
                ("samples", 512, int, "MRF: spiral samples per frame"),
                ("interleaves", 200, int, "MRF: spiral rotations in one cycle"),
                ("rank", 5, int, "MRF: subspace rank"),
                ("atoms", 10000, int, "MRF: about this many (T1, T2) dictionary atoms"),
                ("density-power", 2.0, float, "MRF: variable-density power of the spiral"))


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="padis-simulate", description=doc_summary(__doc__), epilog=_EPILOG,
                      formatter_class=HelpFormatter)
    p.add_argument("src", nargs="?", help="HDF5 with a slices/ group, one HDF5 dataset or a .npy (S,H,W) stack "
                                          "(default: none; required unless --raw-npy or --mrf)")
    p.add_argument("--out", required=True, help="output folder; with --mrf an .h5 file (required)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into an --out folder that already holds .h5 files, replacing those of the same "
                        "name (default: refuse)")
    p.add_argument("--coils", type=int, default=8, help="simulated receive coils (default: %(default)s)")
    p.add_argument("--snr-db", type=float, default=None,
                   help="SNR in dB as defined below; inf: noiseless (default: 30, with --mrf 40)")
    p.add_argument("--matrix", type=_matrix, default=None, metavar="N|HxW",
                   help="resize images to N or HxW first (default: keep each image's size; with --mrf 128)")
    p.add_argument("--spacing-mm", type=float, default=None,
                   help="resample every slice to this pixel size (from its pixel_spacing_mm attribute), then "
                        "centre pad/crop to --matrix: one field of view for all slices (default: off, "
                        "each slice resized whatever its field of view)")
    p.add_argument("--readout-oversampling", type=int, default=1, choices=(1, 2),
                   help="zero-pad the readout (H) axis by this factor before the FFT, like fastMRI's 2x "
                        "oversampled readout (default: %(default)s)")
    p.add_argument("--noise-correlation", type=float, default=0.0,
                   help="off-diagonal coil noise correlation, in [0, 1) (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise and phase (default: %(default)s)")
    p.add_argument("--subjects", nargs="+", default=None, help="subjects or patient ids to keep (default: all)")
    p.add_argument("--contrasts", nargs="+", default=None,
                   help="contrasts to keep (T1, T2, FLAIR, ...; default: all)")
    p.add_argument("--subject", default=None, help="subject of a plain stack (default: file stem)")
    p.add_argument("--contrast", default=None, help="contrast of a plain stack (default: from file name)")
    p.add_argument("--dataset", default=None,
                   help="HDF5 dataset to read when there is no slices/ group (default: the file's only 2-D/3-D "
                        "dataset)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    raw = p.add_argument_group("raw k-space ingest (instead of simulation)")
    raw.add_argument("--raw-npy", default=None, help="complex k-space .npy to convert (default: none, simulate)")
    raw.add_argument("--axes", default="coil,ky,kx", help="axes of the raw array (default: %(default)s)")
    raw.add_argument("--patient-id", default=None, help="patient id (default: file stem)")
    raw.add_argument("--acquisition", default="AXT1",
                     help="acquisition attribute, e.g. AXT1, AXT2, AXFLAIR (default: %(default)s)")
    mrf = p.add_argument_group("MR fingerprinting (instead of multi-coil simulation; --out is then a file)")
    mrf.add_argument("--mrf", default=None, metavar="MAPS.npz",
                     help="quantitative maps to simulate MRF data of (default: none)")
    mrf.add_argument("--mrf-phantom", action="store_true", help="simulate one analytic phantom instead of --mrf")
    for name, default, kind, text in _MRF_OPTIONS:
        mrf.add_argument(f"--{name}", type=kind, default=default, help=f"{text} (default: %(default)s)")
    return p


def _check_out(args) -> None:
    """No silent overwrite: the raw-ingest file, or (simulation, whose file names come from the data) any .h5
    file already in --out, needs --overwrite. Temporaries of killed writes (untouched for 10 minutes) go."""
    from ..atomic import clean_stale_temps

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(where(out, "--out must be a folder"))
    if out.is_dir() and not args.overwrite:
        if args.raw_npy is not None:
            existing = [p for p in [out / f"{Path(args.raw_npy).stem}.h5"] if p.exists()]
        else:
            existing = sorted(out.glob("*.h5"))
        if existing:
            raise ConfigError(where(existing[0], "exists; pass --overwrite to replace files in --out"))
    clean_stale_temps(out, min_age_s=600.0)


def _run_mrf(args) -> int:
    from ..data.simulate import slice_seed
    from ..mrf.files import simulate_mrf_file
    from ..mrf.simulate import MRFSetup
    from ._common import check_output_file

    out = check_output_file(args.out, args.overwrite)
    matrix = 128 if args.matrix is None else args.matrix
    if not isinstance(matrix, int):
        raise ConfigError(f"--mrf needs a square --matrix N, got {'x'.join(map(str, matrix))}")
    setup = MRFSetup(matrix=matrix, frames=args.frames, samples=args.samples, interleaves=args.interleaves,
                     rank=args.rank, atoms=args.atoms, density_power=args.density_power,
                     snr_db=40.0 if args.snr_db is None else args.snr_db)
    if args.mrf_phantom:
        from ..mrf.phantom import mrf_phantom

        stem, maps = "phantom", [mrf_phantom(matrix, seed=args.seed)]
    else:
        from ..mrf.maps import load_maps_npz

        stem, maps = Path(args.mrf).stem, load_maps_npz(args.mrf, matrix)
    entries = [(f"{stem}:{i}", stem, "", m, slice_seed(args.seed, f"{stem}:{i}")) for i, m in enumerate(maps)]
    simulate_mrf_file(out, setup, entries, total=len(entries), progress=not args.no_progress)
    print(f"{out}: {len(entries)} MRF item(s), {matrix} x {matrix}, {setup.frames} frames x {setup.samples} "
          f"samples, SNR {setup.snr_db:g} dB")
    return 0


def _run(args) -> int:
    if args.mrf is not None or args.mrf_phantom:
        return _run_mrf(args)
    _check_out(args)
    if args.raw_npy is not None:
        from ..data.raw_ingest import ingest_npy_kspace

        stem = Path(args.raw_npy).stem
        paths = [ingest_npy_kspace(args.raw_npy, Path(args.out) / f"{stem}.h5",
                                   patient_id=args.patient_id or stem, acquisition=args.acquisition,
                                   axes=args.axes)]
    else:
        from ..data.simulate import simulate_files

        paths = simulate_files(
            args.src, args.out, coils=args.coils, snr_db=30.0 if args.snr_db is None else args.snr_db,
            matrix=args.matrix, seed=args.seed,
            subjects=args.subjects, contrasts=args.contrasts, progress=not args.no_progress,
            readout_oversampling=args.readout_oversampling, noise_correlation=args.noise_correlation,
            subject=args.subject, contrast=args.contrast, dataset=args.dataset, spacing_mm=args.spacing_mm)
    for path in paths:
        print(path)
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    modes = [args.src is not None, args.raw_npy is not None, args.mrf is not None, args.mrf_phantom]
    if sum(modes) != 1:
        parser.error("give one of SRC (simulate), --raw-npy FILE (ingest), --mrf MAPS.npz or --mrf-phantom (MRF)")
    if args.coils < 1:
        parser.error("--coils must be >= 1")
    if not 0.0 <= args.noise_correlation < 1.0:
        parser.error("--noise-correlation must be in [0, 1)")
    return run_cli(lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
