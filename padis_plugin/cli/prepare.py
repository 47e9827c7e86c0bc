"""``padis-prepare``: fastMRI-format multi-coil k-space -> one prepared HDF5 file (spec section 1)."""
from __future__ import annotations

import argparse
import sys

from ._common import OneLineParser, run_cli

_EPILOG = """\
Per slice: coil images (centred orthonormal iFFT), readout cropped and phase encode zero-padded/cropped to
N x N, noise prewhitening from the top-left background corner, k-space resynthesised, ESPIRiT maps
(calibration ACS, kernel 6, threshold sqrt(0.001), no crop), CG-SENSE reference (30 iterations), and
everything divided by the 99th percentile of the RSS of the ACS x ACS low-pass image. Maps are cached in
--cache-dir (default $PADIS_CACHE or ~/.cache/padis_plugin). Already undersampled input keeps its sampling
mask; it is not whitened unless --whiten is given.
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
    p = OneLineParser(prog="padis-prepare", description=__doc__.split(":", 1)[1].strip(), epilog=_EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="fastMRI-format .h5 file or folder of them")
    p.add_argument("--out", required=True, help="prepared HDF5 file to write")
    p.add_argument("--size", type=int, default=384, help="grid N (default 384)")
    p.add_argument("--slices", type=_slices, default="centre", help="centre (default), all or a slice index")
    p.add_argument("--contrast", nargs="+", default=None, help="contrasts to keep (T1, T2, FLAIR, ...)")
    p.add_argument("--acs", type=int, default=24, help="ESPIRiT calibration and normalisation ACS width")
    p.add_argument("--norm-acs", type=int, default=None,
                   help="ACS block of the normalisation constant (default: --acs; the published validation used 20)")
    p.add_argument("--noise-region", type=_region, default=(30, 30), help="background corner N or H,W (30)")
    whiten = p.add_mutually_exclusive_group()
    whiten.add_argument("--no-whiten", dest="whiten", action="store_false", default=None,
                        help="skip noise prewhitening")
    whiten.add_argument("--whiten", dest="whiten", action="store_true",
                        help="prewhiten undersampled data too")
    p.add_argument("--cg-iters", type=int, default=30)
    p.add_argument("--cache-dir", default=None, help="map cache folder")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the map cache")
    p.add_argument("--seed", type=int, default=0, help="recorded in the output (preparation is deterministic)")
    p.add_argument("--no-progress", action="store_true")
    return p


def _run(args) -> int:
    from ..data.prepare import prepare  # after parsing: --help stays fast

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
