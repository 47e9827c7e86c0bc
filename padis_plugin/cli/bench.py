"""``padis-bench``: run a benchmark config (solvers x slices x masks -> results.json, summary.md, figures).

Examples: ``padis-bench --help`` (``_EPILOG`` below).
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from ._common import HelpFormatter, OneLineParser, add_config_options, chosen_config, doc_summary, run_cli

_EPILOG = """\
Examples:
  padis-bench --list-solvers
  padis-bench --list-solvers -v                         # and each solver's parameters, types, defaults
  padis-bench --list-configs                            # the shipped configs, by name
  padis-bench --config wavelet_l1_r4 --out results/wl1_r4
  padis-bench --config paper_table5_data_efficiency --set data.path=data/test_384.h5
  padis-bench --config my_bench.yaml                    # a file of your own (a path wins over a name)
  torchrun --nproc_per_node=4 -m padis_plugin.cli.bench --config ...   # slices sharded over 4 GPUs

The output folder receives results.json, summary.md and figures. Ctrl-C keeps the finished items; the same
command again resumes (after a kill as well). One benchmark at a time writes a folder (a lock file).
"""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="padis-bench", description=doc_summary(__doc__), epilog=_EPILOG,
                      formatter_class=HelpFormatter)
    p.add_argument("--list-solvers", action="store_true", help="print the registered solver names and exit")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="with --list-solvers: also each solver's parameters as 'key: type = default'")
    add_config_options(p, "benchmark", "wavelet_l1_r4")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set acquisition.accelerations=[4,8] (value parsed as YAML; "
                        "repeatable; default: none, the config as written)")
    p.add_argument("--out", help="output folder (default: output.dir of the config, else results/<name>)")
    p.add_argument("--overwrite", action="store_true",
                   help="discard every result in --out and start afresh (by default a changed config "
                        "reuses the finished items it would compute identically)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _run(args) -> int:
    if args.list_solvers:
        from ..solvers.registry import available_solvers, describe_solver
        for name in available_solvers():
            print(name)
            if args.verbose:
                print("\n".join(f"  {line}" for line in describe_solver(name)))
        return 0
    path = chosen_config(args, "bench", ", --list-solvers")
    if path is None:
        return 0
    from ..bench.run import load_bench_config, run_benchmark
    cfg = load_bench_config(path, args.overrides, out=args.out)
    results = run_benchmark(cfg, overwrite=args.overwrite, progress=not args.no_progress, source=path)
    if results is None:
        return 0
    print(f"wrote {cfg.output_dir / 'results.json'} and {cfg.output_dir / 'summary.md'}")
    failed, total = len(results.get("failed") or []), len(results["results"])
    if failed:  # a diverged item is recorded, not fatal; the run fails only when nothing could be solved
        print(f"{'error' if failed == total else 'warning'}: {failed} of {total} items failed (listed in "
              f"{cfg.output_dir / 'summary.md'})", file=sys.stderr)
    return 2 if failed and failed == total else 0


def _terminate(signum, frame):
    raise KeyboardInterrupt("terminated")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM (a scheduler's stop, torchrun stopping its workers) ends like Ctrl-C: the finished items are
    # already on disk, one per line, so the message is all that is missing.
    old = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() else None
    try:
        return run_cli(lambda: _run(args),
                       interrupted="error: {reason}; finished items are saved, rerun the same command to resume")
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


if __name__ == "__main__":
    sys.exit(main())
