"""The MRF-DiPh prior-weight sweep on the validation slices as a figure: T1 and T2 MAPE against lambda, one line
per TSMI prior, the prior-free ADMM-DM as a reference.

    python scripts/plot_mrf_lambda.py experiments/mrf_val_tuning/results.json experiments/mrf_val_tuning/lambda.png
"""
import argparse
import json
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", help="results.json of an mrf task with 'DiPh <prior> l<lambda>' labels")
    p.add_argument("png", help="output figure")
    a = p.parse_args(argv)
    means = {m["solver"]: m for m in json.loads(open(a.results).read())["means"]}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, title in zip(axes, ("mape_t1", "mape_t2"), ("T1 MAPE (%)", "T2 MAPE (%)")):
        curves = {}
        for label, m in means.items():
            hit = re.fullmatch(r"DiPh (\w+) l([0-9.e+-]+)", label)
            if hit:
                curves.setdefault(hit.group(1), []).append((float(hit.group(2)), m[key]))
        for prior, pts in sorted(curves.items()):
            pts.sort()
            ax.plot([x for x, _ in pts], [y for _, y in pts], "o-", label=f"MRF-DiPh, {prior} prior")
        for label, m in means.items():
            if label.startswith("ADMM-DM"):
                ax.axhline(m[key], ls="--", lw=0.8, color="gray")
        ax.set_xscale("log")
        ax.set_xlabel("lambda")
        ax.set_title(title + " (dashed: ADMM-DM, no prior)", fontsize=9)
        ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(a.png, dpi=110)
    print(f"wrote {a.png}")


if __name__ == "__main__":
    sys.exit(main())
