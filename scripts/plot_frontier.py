"""Quality against time: mean PSNR over the slices against mean seconds per slice (log x), one line per sampler
and prior, one panel per acceleration, from one or more padis-bench results.json files on the same slices (a
row, solver and R, found in several files is taken from the first).

    python scripts/plot_frontier.py [--slices=validation] experiments/frontier/results.json \
        experiments/frontier_dps1040/results.json experiments/frontier_dds_noise/results.json \
        experiments/frontier/frontier.png
"""
from __future__ import annotations

import json
import re
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from padis_plugin.atomic import atomic_path  # noqa: E402


def family(row) -> str:
    """Sampler and prior of a row: the label without its trailing call count ("PaDIS DDS 50" and "PaDIS DRS40"
    -> "PaDIS DDS", "PaDIS DRS"); means of K draws ("PaDIS DDS25 K4") form their own line."""
    label = row["solver"]
    if re.search(r"\sK\d+$", label):
        return re.sub(r"\sK\d+$", "", label) + " mean of K"
    return re.sub(r"(?<=[A-Z])\d+$|\s+\d+$", "", label)


def merged_means(results_paths) -> tuple[list[dict], dict]:
    """The all-contrast mean rows of every file, first file first, and the first file's results."""
    results = [json.loads(open(p).read()) for p in results_paths]
    seen, means = set(), []
    for res in results:
        for m in res["means"]:
            if m["contrast"] == "all" and (m["solver"], m["R"]) not in seen:
                seen.add((m["solver"], m["R"]))
                means.append(m)
    return means, results[0]


TITLE_SLICES = "test"


def main(*paths):
    if len(paths) < 2:
        sys.exit("usage: plot_frontier.py RESULTS.json [MORE_RESULTS.json ...] OUT.png")
    global TITLE_SLICES
    if paths and paths[0].startswith("--slices="):
        TITLE_SLICES, paths = paths[0].split("=", 1)[1], paths[1:]
    *results_paths, out_path = paths
    means, res = merged_means(results_paths)
    rs = sorted({m["R"] for m in means})
    names = sorted({family(m) for m in means})
    # one colour and marker per line, the same in every panel (20 colours, then the markers tell lines apart)
    colours = {n: plt.cm.tab20(i % 20) for i, n in enumerate(names)}
    markers = {n: "osD^v<>p"[(i // 10) % 8] for i, n in enumerate(names)}
    fig, axes = plt.subplots(1, len(rs), figsize=(5.5 * len(rs), 4.2), squeeze=False)
    for ax, r in zip(axes[0], rs):
        lines = defaultdict(list)
        for m in means:
            if m["R"] == r:
                lines[family(m)].append((max(m["seconds"], 0.05), m["psnr"], int(m["nfe"])))
        for name, pts in sorted(lines.items()):
            pts.sort()
            xs, ys, calls = zip(*pts)
            style = "--" if "EDM" in name else "-"
            ax.plot(xs, ys, style, marker=markers[name], color=colours[name], label=name)
            for x, y, n in pts:
                if n:
                    ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("seconds per slice (log; numbers: network calls)")
        ax.set_ylabel("mean PSNR (dB)")
        ax.set_title(f"R = {r:g}, {res['dataset']['n_slices']} {TITLE_SLICES} slices")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:  # lines missing from the first panel
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main(*sys.argv[1:])
