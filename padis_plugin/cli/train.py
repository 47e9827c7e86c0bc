"""``padis-train``: train a PaDIS patch prior or a whole-image EDM prior from a YAML config."""
from __future__ import annotations

import argparse
import sys

from ._common import PAPER, HelpFormatter, OneLineParser, add_config_options, chosen_config, doc_summary, run_cli

_EPILOG = f"""\
Examples:
  padis-train --list-configs
  padis-train --config train_padis_cpu --out runs/padis_demo
  padis-train --config train_padis_s25 --set data.path=prepared/brain_train.h5 --set run.steps=50000
  padis-train --config train_padis_s25 --out runs/padis_s25 --resume
  padis-train --config my_prior.yaml --out runs/mine          # a file of your own (a path wins over a name)
  torchrun --nproc_per_node=4 -m padis_plugin.cli.train --config train_padis_s100

The output folder receives resolved_config.yaml, train_log.jsonl, checkpoints/ckpt_step<N>.safetensors/.json
(the newest run.keep_last of them, 3 unless set; 0 or null keeps all), latest.json and (with run.sample_every)
samples/*.png. Ctrl-C finishes the current step, writes a checkpoint and exits with status 130; --resume
continues exactly where it stopped (after a kill as well: a torn last log line is dropped with a warning). A
folder whose run stopped before its first checkpoint is started afresh; one run at a time writes a folder (a
lock file). Patch priors and their training follow {PAPER}.
"""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="padis-train", description=doc_summary(__doc__), epilog=_EPILOG,
                      formatter_class=HelpFormatter)
    add_config_options(p, "training", "train_padis_cpu")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set optim.lr=5e-5 (value parsed as YAML; repeatable; "
                        "default: none, the config as written)")
    p.add_argument("--out", default=None, help="output folder (default: run.out of the config)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest checkpoint in the output folder (default: start afresh)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _run(args) -> int:
    path = chosen_config(args, "train")
    if path is None:
        return 0
    from ..config import load_config
    from ..train import TrainConfig, train

    cfg = load_config(TrainConfig, path, args.overrides)
    result = train(cfg, out_dir=args.out, resume=args.resume, progress=False if args.no_progress else None)
    if result.get("checkpoint"):
        print(f"step {result['step']}: {result['checkpoint']}.safetensors (skipped steps: {result['skipped']})")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args), interrupted="{reason}; continue with --resume")


if __name__ == "__main__":
    sys.exit(main())
