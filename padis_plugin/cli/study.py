"""``padis-study``: a blinded forced-choice reader study of padis-bench reconstructions (create, serve, analyze).

Examples: ``padis-study --help`` (``_EPILOG`` below).
"""
from __future__ import annotations

import argparse
import sys

from ..errors import PadisError
from ._common import PAPER, HelpFormatter, OneLineParser, doc_summary, run_cli

_EPILOG = f"""\
Examples:
  padis-study create --results results/table5 --solvers "PaDIS S=25" "EDM S=25" Wavelet-L1 \\
      --solvers "PaDIS S=100" "EDM S=100" Wavelet-L1 --cases 60 --stratify contrast,training_size --out study/
  padis-study serve study/ --port 8765           # readers open http://127.0.0.1:8765/
  padis-study analyze study/ --method "PaDIS S=25" --out study/report

create reads the reconstructions padis-bench saves (output.save_recons: true, the default) and the reference
image (recons/<slice>/reference.npy, or the prepared data file). analyze writes report.md, report.json and
preference.png in the form of Table 2 of {PAPER}.
"""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="padis-study", description=doc_summary(__doc__), epilog=_EPILOG,
                      formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True,
                           help="create, serve or analyze (each has --help)")
    c = sub.add_parser("create", help="build a blinded study from padis-bench output folders",
                       formatter_class=HelpFormatter)
    c.add_argument("--results", nargs="+", required=True, metavar="DIR", help="padis-bench output folder(s)")
    c.add_argument("--solvers", nargs="+", action="append", required=True, metavar="LABEL",
                   help="the methods shown together, by their bench labels; repeat for another group with the "
                        "same number of methods (matched by position, e.g. one group per training-set size)")
    c.add_argument("--cases", type=int, required=True, help="number of cases in the study")
    c.add_argument("--stratify", default="", metavar="KEYS",
                   help="comma-separated stratum keys (contrast, training_size, R, patient) for proportional "
                        "sampling and the report's strata (default: none)")
    c.add_argument("--quota", nargs="+", default=[], metavar="KEY=VALUES:N",
                   help="fixed case counts instead of proportional ones, per combination of the other --stratify "
                        "keys: e.g. the paper's 18 T2 + 12 T1/FLAIR per training-set size is --stratify "
                        "contrast,training_size --quota contrast=T2:18 'contrast=T1|FLAIR:12' --cases 60 "
                        "(default: none, proportional sampling)")
    c.add_argument("--seed", type=int, default=0, help="seed of the case sample and on-screen orders "
                                                      "(default: %(default)s)")
    c.add_argument("--data", metavar="PREPARED.h5",
                   help="prepared data file with the reference images (default: recons/<slice>/reference.npy "
                        "of the bench folder, else its results.json dataset.path)")
    c.add_argument("--question", default="Which reconstruction is best for diagnosis?",
                   help="question shown above every case (default: %(default)s)")
    c.add_argument("--out", required=True, help="new study folder (refused if it holds a study)")

    s = sub.add_parser("serve", help="serve the readers' page (localhost by default)", formatter_class=HelpFormatter)
    s.add_argument("study", help="study folder made by create")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to bind; another than localhost makes the study reachable from other machines "
                        "(default: %(default)s)")
    s.add_argument("--port", type=int, default=8765, help="TCP port, 0 for any free one (default: %(default)s)")
    s.add_argument("--threads", type=int, default=8, help="request threads (default: %(default)s)")

    a = sub.add_parser("analyze", help="unblind: report.md, report.json, preference.png",
                       formatter_class=HelpFormatter)
    a.add_argument("study", help="study folder")
    a.add_argument("--method", help="the method whose preference is tested: a solver label or role "
                                    "(default: the first of every --solvers group)")
    a.add_argument("--readers", nargs="+", metavar="ID", help="readers to include (default: all with answers)")
    a.add_argument("--out", help="report folder (default: STUDY/report)")
    return p


def _run(args) -> int:
    if args.command == "create":
        from ..study.create import create_study
        stratify = [k.strip() for k in args.stratify.split(",") if k.strip()]
        summary = create_study(args.results, args.solvers, args.cases, args.out, stratify=stratify, seed=args.seed,
                               data=args.data, question=args.question, quotas=args.quota)
        for note in summary["notes"]:
            print(f"note: {note}", file=sys.stderr)
        strata = ", ".join(f"{k}: {v}" for k, v in sorted(summary["per_stratum"].items()))
        print(f"wrote {summary['study']}: {summary['cases']} of {summary['available']} available cases ({strata})")
    elif args.command == "serve":
        try:
            import waitress  # noqa: F401  (the server's two dependencies, named before anything starts)

            from ..study.server import serve
        except ModuleNotFoundError as e:
            if e.name not in ("flask", "waitress"):
                raise
            raise PadisError(f"padis-study serve needs {e.name}, part of the reader-study extra: "
                             "pip install 'padis-plugin[study]'") from None
        serve(args.study, host=args.host, port=args.port, threads=args.threads)
    else:
        from ..study.analyze import write_report
        rep = write_report(args.study, out=args.out, method=args.method, readers=args.readers)
        for w in rep["warnings"]:
            print(f"warning: {w}", file=sys.stderr)
        out = args.out or f"{args.study}/report"
        print(f"wrote {out}/report.md, report.json and preference.png ({rep['method']}, "
              f"{len(rep['readers'])} reader(s))")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args), interrupted="padis-study: stopped; every answer given is stored")


if __name__ == "__main__":
    sys.exit(main())
