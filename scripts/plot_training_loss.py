"""Training-loss curves of padis-train runs (convergence check), with windowed means printed and saved.

    python scripts/plot_training_loss.py "PaDIS S=100=outputs/train/padis_s100" "EDM S=100=outputs/train/edm_s100" \
        --out experiments/training_loss/training_loss_s100.png

Writes the PNG and a JSON beside it: per run, the mean loss over the first, middle and last tenth of the steps.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from padis_plugin.atomic import write_json
from padis_plugin.bench.figures import loss_curves
from padis_plugin.train.loop import loss_tenths, read_log


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR (a padis-train output folder)")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write (a .json with the means beside it)")
    parser.add_argument("--window", type=int, default=100, help="running-mean window in steps")
    args = parser.parse_args(argv)

    curves, summary = {}, {}
    for spec in args.runs:
        label, sep, run = spec.rpartition("=")
        if not sep or not label:
            raise SystemExit(f"error: {spec}: expected LABEL=RUN_DIR")
        log = read_log(run)
        if not log:
            raise SystemExit(f"error: {run}: no training log (train_log.jsonl) found")
        curves[label] = ([r["step"] for r in log], [r["loss"] for r in log])
        summary[label] = {"run": run, "steps": len(log), "elapsed_s": log[-1]["elapsed"], **loss_tenths(log)}
        print(f"{label}: " + ", ".join(f"{k} {v:.4g}" for k, v in summary[label].items() if k != "run"))
    loss_curves(args.out, curves, window=args.window, title="training loss")
    write_json(args.out.with_suffix(".json"), summary)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
