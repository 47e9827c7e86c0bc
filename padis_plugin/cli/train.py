"""``padis-train``: train a PaDIS patch prior or a whole-image EDM prior from a YAML config."""
from __future__ import annotations

import argparse
import sys

from ._common import OneLineParser, run_cli

_EPILOG = """\
Examples:
  padis-train --config configs/train_padis_cpu.yaml --out runs/padis_demo
  padis-train --config configs/train_padis_s25.yaml --set data.path=prepared/brain_train.h5 --set run.steps=50000
  padis-train --config configs/train_padis_s25.yaml --out runs/padis_s25 --resume
  torchrun --nproc_per_node=4 -m padis_plugin.cli.train --config configs/train_padis_s100.yaml

The output folder receives resolved_config.yaml, train_log.jsonl, checkpoints/ckpt_step<N>.safetensors/.json,
latest.json and (with run.sample_every) samples/*.png. Ctrl-C finishes the current step, writes a checkpoint
and exits with status 130; --resume continues exactly where it stopped.
"""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="padis-train", description=__doc__.split(":", 1)[1].strip(), epilog=_EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="training YAML (see configs/train_*.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set optim.lr=5e-5 (value parsed as YAML; repeatable)")
    p.add_argument("--out", default=None, help="output folder (default: run.out of the config)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the output folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _run(args) -> int:
    from ..config import load_config
    from ..train import TrainConfig, train

    cfg = load_config(TrainConfig, args.config, args.overrides)
    result = train(cfg, out_dir=args.out, resume=args.resume, progress=False if args.no_progress else None)
    if result.get("checkpoint"):
        print(f"step {result['step']}: {result['checkpoint']}.safetensors (skipped steps: {result['skipped']})")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args), interrupted="{reason}; continue with --resume")


if __name__ == "__main__":
    sys.exit(main())
