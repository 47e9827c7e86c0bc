"""``padis-recon``: reconstruct one slice with any solver, or (no INPUT) run the bundled demo.

Examples: ``padis-recon --help`` (``_EPILOG`` below).
"""
from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError
from ..metrics import metrics_text
from ._common import PAPER, HelpFormatter, OneLineParser, check_output_file, doc_summary, run_cli

DPS_SOLVERS = ("dps", "padis-dps", "edm-dps")
STEP_SOLVERS = DPS_SOLVERS + ("dds", "daps", "hfs-pc", "padis-dds", "edm-dds", "hfs-dds", "padis-daps", "edm-daps")

_EPILOG = f"""\
Examples:
  padis-recon                                           # demo: 4 solvers on a bundled slice -> ./padis_demo_output
  padis-recon --mode sample --padis-checkpoint ckpt/padis --edm-checkpoint ckpt/edm
  padis-recon raw/file_brain_AXT2_200_6002217.h5 --png x.png              # the recommended PaDIS mode
  padis-recon data/test_384.h5 --slice file_brain_001:2 --solver padis-dps --set zeta=3 --out x.npy --png x.png
  padis-recon raw/file_brain_AXT2_200_6002217.h5 --solver wavelet-l1 --acceleration 8 --out x.h5
  padis-recon data/test_384.h5 --solver wavelet-l1 --mask-kind poisson --acceleration 8 --png x.png
  padis-recon mrf.h5 --solver mrf-diph --out maps.npz --png maps.png     # MR fingerprinting: T1 / T2 / PD maps

padis-dps is Algorithm 1 of {PAPER} (VE-DPS with a patch prior;
the paper uses 104 noise levels x 10 inner iterations). padis-bench --list-solvers names every solver.
"""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="padis-recon", description=doc_summary(__doc__), epilog=_EPILOG,
                      formatter_class=HelpFormatter)
    p.add_argument("input", nargs="?",
                   help="prepared .h5 or raw fastMRI .h5 (default: none, run the demo on a bundled slice)")
    p.add_argument("--slice", dest="slice_id", metavar="ID",
                   help="slice id or position (prepared), slice index (raw) (default: the first slice of a "
                        "prepared file, the centre slice of a raw one, the held-out bundled slice in the demo)")
    p.add_argument("--solver", default=None,
                   help="registered solver name (default: the recommended --mode of the PaDIS prior, with the "
                        "shipped prior trained for the slice's grid)")
    p.add_argument("--mode", choices=("best", "fast", "sample"), default="best",
                   help="recommended mode when no --solver is given, and in the demo: best (the best point "
                        "estimate, plug-and-play DRS with the prior), fast (the fastest within 0.5 dB of it), "
                        "sample (a posterior sample, DDS) (default: %(default)s)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="solver parameter, e.g. --set zeta=3 --set checkpoint=ckpt/padis (value parsed as YAML; "
                        "repeatable; default: none, the solver's defaults)")
    p.add_argument("--size", type=int, default=None,
                   help="N of the N x N grid a raw fastMRI file is prepared on (default: the file's own "
                        "reconstruction matrix from its header, e.g. 320 for fastMRI brain; a prepared file keeps "
                        "its grid)")
    p.add_argument("--acceleration", type=float, default=4.0, help="undersampling factor R (default: %(default)s)")
    p.add_argument("--mask-kind", choices=("cartesian", "poisson"), default="cartesian",
                   help="1-D Cartesian lines (the paper's) or a 2-D variable-density Poisson-disc mask with a "
                        "fully sampled --acs square; ignored for data acquired undersampled (default: %(default)s)")
    p.add_argument("--acs", type=int, default=None,
                   help="fully sampled central lines, or the side of the square (default: 24 at N = 384, scaled "
                        "to the grid: 8 at 128)")
    p.add_argument("--seed", type=int, default=0, help="solver random seed (default: %(default)s)")
    p.add_argument("--mask-seed", type=int, default=0, help="mask random seed (default: %(default)s)")
    p.add_argument("--out", help="output .npy or .h5 (complex image) (default: none, not written)")
    p.add_argument("--png", help="output figure .png (default: none, not written)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out or --png file (default: refuse; --out and --png are written "
                        "together or not at all)")
    p.add_argument("--demo-out", default="padis_demo_output",
                   help="demo output folder; the demo replaces its own files there on every run "
                        "(default: ./%(default)s)")
    p.add_argument("--padis-checkpoint", default="padis-s25",
                   help="demo PaDIS checkpoint, a path or shipped name (default: %(default)s)")
    p.add_argument("--edm-checkpoint", default="edm-s25",
                   help="demo EDM checkpoint, a path or shipped name (default: %(default)s)")
    p.add_argument("--steps", type=int,
                   help="noise levels K of a diffusion sampler; in the demo, the iterations (plug-and-play) or "
                        "noise levels (DDS) of the priors' mode (default: the solver's or mode's own)")
    p.add_argument("--inner", type=int,
                   help="VE-DPS inner iterations L (default: the solver's own, 10 for padis-dps; "
                        "not used by DDS/DAPS)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _params(overrides) -> dict:
    from ..config import parse_value

    params = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        params[key.strip()] = parse_value(value, source=f"--set {key.strip()}")
    return params


def _run_mrf(args) -> int:
    """An MR-fingerprinting file: T1 / T2 / PD maps of one item."""
    from ..recon_mrf import reconstruct_mrf

    params = _params(args.overrides)
    if args.steps is not None:
        params.setdefault("steps", args.steps)
    rec = reconstruct_mrf(args.input, args.slice_id, args.solver, params, out=args.out, png=args.png,
                          seed=args.seed, device=args.device, overwrite=args.overwrite)
    m = rec["metrics"]
    print(f"{rec['solver']} on {rec['item']}: T1 MAPE {m['mape_t1']:.1f} %, T2 MAPE {m['mape_t2']:.1f} % "
          f"(in the file's tissue mask); {rec['seconds']:.1f} s, {rec['nfe']} network evaluations")
    for path in (args.out, args.png):
        if path:
            print(f"wrote {path}")
    return 0


MAX_SEED = 2 ** 63 - 1  # a torch.Generator seed


def _run(args) -> int:
    import re

    if not re.fullmatch(r"cpu|cuda(:\d+)?", args.device):
        raise ConfigError(f"--device {args.device!r}: use cpu, cuda or cuda:K")
    for option, value in (("--seed", args.seed), ("--mask-seed", args.mask_seed)):
        if not 0 <= value <= MAX_SEED:
            raise ConfigError(f"{option} {value}: a seed is an integer in [0, 2**63 - 1]")
    if args.device.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda requested but CUDA is not available")
    if args.input is None:
        if args.mask_kind != "cartesian":
            raise ConfigError("--mask-kind needs an INPUT; the demo uses its Cartesian masks")
        from ..recon import run_demo
        run_demo(args.demo_out, steps=args.steps, inner=args.inner, device=args.device,
                 padis_checkpoint=args.padis_checkpoint, edm_checkpoint=args.edm_checkpoint,
                 acceleration=args.acceleration, acs_lines=args.acs, seed=args.seed,
                 slice_id=args.slice_id, progress=not args.no_progress, mode=args.mode)
        return 0
    for option, path in (("--out", args.out), ("--png", args.png)):  # before the slow part
        check_output_file(path, args.overwrite, option)
    from ..recon_mrf import is_mrf_file
    if is_mrf_file(args.input):
        return _run_mrf(args)
    from ..recon import reconstruct
    params = _params(args.overrides)
    if args.solver is None:  # the recommended mode: --steps sets its iterations or noise levels
        from ..recommended import MODES, PNP
        name = MODES[args.mode]["padis"][0]
        if args.steps is not None:
            params.setdefault("iterations" if name == PNP else "steps", args.steps)
        if name != PNP:
            params.setdefault("progress", not args.no_progress)
    if args.solver in STEP_SOLVERS:  # --steps (and --inner for DPS) also apply to a single run
        if args.steps is not None:
            params.setdefault("steps", args.steps)
        if args.inner is not None and args.solver in DPS_SOLVERS:
            params.setdefault("inner", args.inner)
    if args.solver in STEP_SOLVERS + ("diffpir", "padis-diffpir"):  # library default: no bar; the CLI shows one
        params.setdefault("progress", not args.no_progress)
    rec = reconstruct(args.input, args.slice_id, args.solver, params, acceleration=args.acceleration,
                      seed=args.seed, acs_lines=args.acs, out=args.out, png=args.png, device=args.device,
                      mask_seed=args.mask_seed, overwrite=args.overwrite, mask_kind=args.mask_kind, size=args.size,
                      mode=args.mode)
    m = rec["metrics"]
    summary = metrics_text(m) if m else "no reference (acquired undersampled)"
    print(f"{rec['solver']} on {rec['slice']} ({rec['size']} x {rec['size']}): {summary}; {rec['seconds']:.1f} s, "
          f"{rec['nfe']} network evaluations")
    from ..solvers.registry import resolved_params
    settings = ", ".join(f"{k}={v}" for k, v in resolved_params(rec["solver"], rec["params"], grid=rec["size"]).items()
                         if k != "progress")
    print(f"settings: {settings or 'none'}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
