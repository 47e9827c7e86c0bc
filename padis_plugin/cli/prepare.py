"""``padis-prepare``: fastMRI-format multi-coil k-space -> one prepared HDF5 file (the data preparation of
PaDIS-MRI: coil sensitivity maps, CG-SENSE reference images, normalisation)."""
from __future__ import annotations

import argparse
import sys

from ._common import PAPER, HelpFormatter, OneLineParser, check_output_file, doc_summary, run_cli

_EPILOG = f"""\
Examples:
  padis-prepare raw/brain_val --out prepared/brain_test.h5                   # centre slice of every volume
  padis-prepare raw/brain_train --out prepared/brain_train.h5 --slices all --contrast T2 FLAIR
  padis-prepare raw/file_brain_AXT2_200_6002217.h5 --out prepared/one.h5 --size 320 --slices 5

Per slice, as in {PAPER}: coil images (centred orthonormal iFFT),
readout cropped and phase encode zero-padded/cropped to N x N, noise prewhitening from the top-left
background corner, k-space resynthesised, ESPIRiT maps (calibration ACS, kernel 6, threshold sqrt(0.001),
no crop), CG-SENSE reference (--cg-iters iterations), and everything divided by the 99th percentile of the
RSS of the ACS x ACS low-pass image. Maps are cached in --cache-dir. Already undersampled input keeps its
sampling mask; it is not whitened unless --whiten is given.
"""


def _slices(text: str):
    if text.lower() in ("centre", "center", "all"):
        return "centre" if text.lower() != "all" else "all"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--slices must be centre, all or an index, got {text!r}") from None


def _region(text: str):
    try:
        values = [int(v) for v in text.lower().replace("x", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--noise-region must be N or H,W, got {text!r}") from None
    if len(values) not in (1, 2) or min(values) < 1:
        raise argparse.ArgumentTypeError(f"--noise-region must be N or H,W with positive sizes, got {text!r}")
    return (values[0], values[0]) if len(values) == 1 else tuple(values)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="padis-prepare", description=doc_summary(__doc__), epilog=_EPILOG,
                      formatter_class=HelpFormatter)
    p.add_argument("src", help="fastMRI-format .h5 file or folder of them")
    p.add_argument("--out", required=True, help="prepared HDF5 file to write (required)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file (default: refuse)")
    p.add_argument("--size", type=int, default=384, help="grid N: slices become N x N (default: %(default)s)")
    p.add_argument("--slices", type=_slices, default="centre",
                   help="centre, all or a slice index, per volume (default: %(default)s)")
    p.add_argument("--contrast", nargs="+", default=None,
                   help="contrasts to keep (T1, T2, FLAIR, ...; default: all)")
    p.add_argument("--acs", type=int, default=24,
                   help="ESPIRiT calibration and normalisation ACS width (default: %(default)s)")
    p.add_argument("--norm-acs", type=int, default=None,
                   help="ACS block of the normalisation constant (default: --acs; the published validation used 20)")
    p.add_argument("--noise-region", type=_region, default=(30, 30), metavar="N|H,W",
                   help="background corner (top left) the noise covariance is estimated from (default: 30,30)")
    whiten = p.add_mutually_exclusive_group()
    whiten.add_argument("--no-whiten", dest="whiten", action="store_false", default=None,
                        help="skip noise prewhitening (default: prewhiten fully sampled data)")
    whiten.add_argument("--whiten", dest="whiten", action="store_true",
                        help="prewhiten undersampled data too (default: only fully sampled data)")
    p.add_argument("--cg-iters", type=int, default=30,
                   help="CG-SENSE iterations of the reference image (default: %(default)s)")
    p.add_argument("--cache-dir", default=None,
                   help="map cache folder (default: $PADIS_CACHE, else ~/.cache/padis_plugin)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the map cache")
    p.add_argument("--seed", type=int, default=0,
                   help="recorded in the output; preparation is deterministic (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _run(args) -> int:
    from ..atomic import clean_stale_temps
    from ..data.prepare import prepare  # after parsing: --help stays fast

    out = check_output_file(args.out, args.overwrite)  # before the slow part
    # temporaries of an earlier killed write of this output (not touched for 10 minutes: not being written)
    clean_stale_temps(out.parent, names=[out.name], min_age_s=600.0)

    out = prepare(args.src, args.out, size=args.size, slices=args.slices, contrasts=args.contrast,
                  seed=args.seed, cache_dir=args.cache_dir, cache=not args.no_cache,
                  progress=not args.no_progress, acs=args.acs, norm_acs=args.norm_acs,
                  noise_region=args.noise_region,
                  whiten=args.whiten, cg_iters=args.cg_iters)
    print(f"wrote {out}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
