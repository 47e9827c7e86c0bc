"""``padis-import``: import a published PaDIS-MRI or FastMRI-EDM ``network-snapshot.pkl`` as a checkpoint
(``STEM.safetensors`` + ``STEM.json``) without executing anything from the file."""
from __future__ import annotations

import argparse
import sys

from ._common import PAPER, HelpFormatter, OneLineParser, doc_summary, run_cli

_EPILOG = f"""\
Examples:
  padis-import padis-mri-200/network-snapshot-001451.pkl --out priors/padis-published
  padis-import fastmri-edm-200/network-snapshot-000650.pkl --out priors/edm-published
  padis-recon FILE.h5 --solver dds --set checkpoint=priors/padis-published

The snapshot is read by an allow-listed unpickler: persistent network objects come back as data and their
embedded source is never compiled or run; any other global in the file (os.system, eval, ...) is refused
with one error line and nothing is written. The PaDIS-MRI (Patch_EDMPrecond) and FastMRI-EDM (EDMPrecond)
priors of {PAPER} import onto the package's network tensor by tensor; the
weights stay the authors', under their terms.
"""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="padis-import", description=doc_summary(__doc__), epilog=_EPILOG,
                      formatter_class=HelpFormatter)
    p.add_argument("src", metavar="SRC.pkl", help="the published network-snapshot pickle")
    p.add_argument("--out", metavar="STEM", default=None,
                   help="output stem; STEM.safetensors and STEM.json are written (default: SRC without .pkl)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint at STEM "
                                                             "(default: refuse)")
    return p


def _run(args) -> int:
    from ..checkpoints import read_checkpoint_config
    from ..published import import_published

    path = import_published(args.src, out=args.out, overwrite=args.overwrite)
    config = read_checkpoint_config(path)
    model = config["model"]
    print(f"{path.with_suffix('')}: kind {config['kind']}, {config['published']['class_name']} "
          f"(model_channels {model['model_channels']}, channel_mult {list(model['channel_mult'])}, "
          f"num_blocks {model['num_blocks']}), sigma_data {config['sigma_data']}")
    if config.get("max_batch"):
        print(f"patches run {config['max_batch']} per network call (max_batch; a DPS gradient recomputes each "
              "chunk, which bounds its memory: see --set max_batch=N of the solvers)")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
