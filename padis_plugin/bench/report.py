"""Benchmark summaries: means per (solver, R, contrast), paired differences, and ``summary.md`` tables
in the paper's format (rows = solver (x S), columns PSNR / SSIM / NRMSE, one table per R)."""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from .items import acquisition_section
from ..metrics import IMAGE_METRICS, METRICS as TABLE, paired_difference

METRICS = IMAGE_METRICS  # the slice task's columns, titled and rounded as the metric table says
ALL = "all"


def pair_list(cfg) -> list[tuple[str, str]]:
    """(A, B) label pairs reported as A - B: the configured ``pairs``, then every solver minus ``reference``."""
    pairs = [tuple(p) for p in cfg.pairs]
    if cfg.reference is not None:
        pairs += [(s.display, cfg.reference) for s in cfg.solvers if s.display != cfg.reference]
    return list(dict.fromkeys(pairs))


def _selected(rows, seeds):
    """The finished (not failed) rows of the mask ``seeds``."""
    seeds = set(seeds) if seeds is not None else None
    return [r for r in rows if (seeds is None or r["seed"] in seeds) and not r.get("error")]


def failed(rows) -> list[dict]:
    """The items whose solver failed (diverged, overflowed, ...): slice, solver, R, mask seed and why."""
    return [{k: r[k] for k in ("id", "solver", "R", "seed", "error")} for r in rows if r.get("error")]


def _groups(rows):
    """(solver, R, contrast) -> rows, with contrast ``all`` as well as each contrast."""
    groups = defaultdict(list)
    for r in rows:
        groups[(r["solver"], r["R"], ALL)].append(r)
        groups[(r["solver"], r["R"], r["contrast"])].append(r)
    return groups


def means(rows, seeds=None) -> list[dict]:
    """Mean and population SD of each metric, mean seconds and NFE, per (solver, R, contrast)."""
    out = []
    for (solver, r, contrast), group in _groups(_selected(rows, seeds)).items():
        entry = {"solver": solver, "training_size": group[0].get("training_size"), "R": r, "contrast": contrast,
                 "n": len(group)}
        for m in METRICS:
            values = np.array([g[m] for g in group], dtype=np.float64)
            entry[m], entry[f"{m}_sd"] = float(values.mean()), float(values.std())
        entry["seconds"] = float(np.mean([g["seconds"] for g in group]))
        entry["nfe"] = float(np.mean([g["nfe"] for g in group]))
        out.append(entry)
    return out


def paired(rows, pairs, seeds=None) -> list[dict]:
    """Paired differences A - B (mean, population SD) over the (slice, seed) items both solved, per R and
    contrast (``all`` and each)."""
    rows = _selected(rows, seeds)
    index = {(r["solver"], r["R"], r["id"], r["seed"]): r for r in rows}
    out = []
    for a, b in pairs:
        for r_value in sorted({r["R"] for r in rows}):
            keys = sorted((i, s) for (lab, rr, i, s) in index if lab == a and rr == r_value
                          and (b, r_value, i, s) in index)
            contrasts = sorted({index[(a, r_value, i, s)]["contrast"] for i, s in keys})
            for contrast in [ALL] + (contrasts if len(contrasts) > 1 else []):
                sel = [(i, s) for i, s in keys if contrast == ALL or index[(a, r_value, i, s)]["contrast"] == contrast]
                if not sel:
                    continue
                entry = {"a": a, "b": b, "R": r_value, "contrast": contrast, "n": len(sel)}
                for m in METRICS:
                    mean, sd = paired_difference([index[(a, r_value, i, s)][m] for i, s in sel],
                                                 [index[(b, r_value, i, s)][m] for i, s in sel])
                    entry[m], entry[f"{m}_sd"] = mean, sd
                out.append(entry)
    return out


def uncertainty_means(unc) -> list[dict]:
    """Mean over slices of the in-brain mean pixel-wise SD (and coefficient of variation), per (solver, R)."""
    groups = defaultdict(list)
    for u in unc:
        groups[(u["solver"], u["R"])].append(u)
    return [{"solver": s, "training_size": g[0].get("training_size"), "R": r, "n": len(g),
             "mean_std_brain": float(np.nanmean([u["mean_std_brain"] for u in g])),
             "mean_cv_brain": float(np.nanmean([u["mean_cv_brain"] for u in g]))}
            for (s, r), g in groups.items()]


# ------------------------------------------------------------------------------------------ markdown
def _f(value, digits):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _pm(mean, sd, digits, signed=False):
    sign = "+" if signed and mean >= 0 else ""
    return f"{sign}{mean:.{digits}f} ± {sd:.{digits}f}"


def _cell(value) -> str:
    """A table cell: a label's ``|`` or line break must not split the row."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _table(header, rows) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


def summary_markdown(results: dict) -> str:
    """The ``summary.md`` text of a results dict produced by :meth:`padis_plugin.bench.store.ResultStore.collect`."""
    cfg = results["config"]
    order = [s["label"] or s["name"] for s in cfg["solvers"]]
    sizes = {s["label"] or s["name"]: s.get("training_size") for s in cfg["solvers"]}
    with_s = any(v is not None for v in sizes.values())
    accelerations = [float(r) for r in acquisition_section(cfg)["accelerations"]]
    contrasts = results["dataset"]["contrasts"]
    env = results["device"]
    m_index = {(m["solver"], m["R"], m["contrast"]): m for m in results["means"]}
    hw = env.get("gpu") or env.get("cpu")

    lines = [f"# Benchmark `{results['name']}`", ""]
    lines += [f"- data: `{results['dataset']['path']}` ({results['dataset']['n_slices']} slices, "
              f"{results['dataset']['size']}x{results['dataset']['size']}, contrasts: {', '.join(contrasts)})",
              _masks_line(results, accelerations),
              f"- metrics on magnitude images, data range max-min |ref|"
              + (f", centre crop {cfg['crop']}" if cfg.get("crop") else ", full image"),
              f"- device: {hw} ({env['type']}, {env['world_size']} process(es)); versions: "
              + ", ".join(f"{k} {v}" for k, v in results["versions"].items()),
              f"- config hash `{results['config_hash']}`, global seed {cfg['seed']}", ""]

    def solver_rows(r_value, contrast, with_n=False):
        out = []
        for lab in order:
            m = m_index.get((lab, r_value, contrast))
            if m is None:
                continue
            row = [lab] + ([_s(sizes[lab])] if with_s else []) + ([m["n"]] if with_n else [])
            row += [_pm(m[k], m[f"{k}_sd"], TABLE[k].digits) for k in METRICS] + [_f(m["seconds"], 2), _f(m["nfe"], 0)]
            out.append(row)
        return out

    head = ["Solver"] + (["S"] if with_s else [])
    for r_value in accelerations:
        n = next((m["n"] for m in results["means"] if m["R"] == r_value and m["contrast"] == ALL), 0)
        lines += [f"## R = {r_value:g} (all contrasts, N = {n})", "",
                  "Mean ± SD over slices and mask seeds.", ""]
        titles = [TABLE[k].title for k in METRICS]
        lines += _table(head + titles + ["time (s)", "NFE"], solver_rows(r_value, ALL))
        lines.append("")
        if len(contrasts) > 1:
            lines += [f"### R = {r_value:g} by contrast", ""]
            rows = []
            for c in contrasts:
                rows += [[c] + row for row in solver_rows(r_value, c, with_n=True)]
            lines += _table(["Contrast"] + head + ["N"] + titles + ["time (s)", "NFE"], rows)
            lines.append("")
        pairs = [p for p in results["paired"] if p["R"] == r_value]
        if pairs:
            lines += [f"### R = {r_value:g} paired differences (A - B, mean ± SD over paired items)", ""]
            lines += _table(["A - B", "Contrast", "N"] + [f"Δ{t}" for t in titles],
                            [[f"{p['a']} - {p['b']}", p["contrast"], p["n"]]
                             + [_pm(p[k], p[f"{k}_sd"], TABLE[k].digits, True) for k in METRICS] for p in pairs])
            lines.append("")
    if len(accelerations) > 1:
        for metric in METRICS:
            digits = TABLE[metric].digits
            lines += [f"## {TABLE[metric].name} by acceleration (all contrasts)", ""]
            rows = [[lab] + ([_s(sizes[lab])] if with_s else [])
                    + [_f(m_index[(lab, r, ALL)][metric], digits) if (lab, r, ALL) in m_index else "-"
                       for r in accelerations] for lab in order]
            lines += _table(head + [f"R={r:g}" for r in accelerations], rows)
            lines.append("")
    bad = results.get("failed") or []
    if bad:
        lines += [f"## Failed items ({len(bad)}): left out of every mean above", ""]
        lines += _table(["Slice", "Solver", "R", "Mask seed", "Error"],
                        [[b["id"], b["solver"], f"{b['R']:g}", b["seed"], b["error"]] for b in bad])
        lines.append("")
    unc = results.get("uncertainty")
    if unc:
        u_index = {(u["solver"], u["R"]): u for u in unc["means"]}
        seeds = cfg["uncertainty"]["seeds"]
        k = seeds if isinstance(seeds, int) else len(seeds)
        lines += [f"## Uncertainty: mean pixel-wise SD inside the brain over {k} masks", "",
                  "Population SD of the complex reconstructions, Otsu brain mask on |ref|"
                  + (f", centre crop {cfg['uncertainty']['crop']}" if cfg["uncertainty"].get("crop") else "")
                  + "; coefficient of variation SD/|mean| in brackets.", ""]
        labels = [lab for lab in order if any((lab, r) in u_index for r in accelerations)]
        rows = [[lab] + ([_s(sizes[lab])] if with_s else [])
                + [f"{u_index[(lab, r)]['mean_std_brain']:.4f} ({u_index[(lab, r)]['mean_cv_brain']:.3f})"
                   if (lab, r) in u_index else "-" for r in accelerations] for lab in labels]
        lines += _table(head + [f"R={r:g}" for r in accelerations], rows)
        lines.append("")
    return "\n".join(lines)


def _masks_line(results, accelerations) -> str:
    """The masks of a results dict; a Poisson-disc one with the R its masks achieved (mean over items)."""
    masks = acquisition_section(results["config"])
    if masks.get("kind", "cartesian") == "cartesian":
        return (f"- masks: 1-D Cartesian, R = {', '.join(f'{r:g}' for r in accelerations)}, "
                f"{_acs(results)} ACS lines, mask seeds {masks['seeds']}"
                + (f" (file `{masks['file']}`)" if masks.get("file") else ""))
    achieved = []
    for r in accelerations:
        got = [x["achieved_R"] for x in results["results"] if x["R"] == r and x.get("achieved_R") is not None]
        achieved.append(f"{r:g}" + (f" (achieved {sum(got) / len(got):.2f})" if got else ""))
    return (f"- masks: 2-D variable-density Poisson-disc, R = {', '.join(achieved)}, {_acs(results)} x "
            f"{_acs(results)} ACS square, mask seeds {masks['seeds']}")


def _acs(results) -> str:
    """ACS lines actually used (``acs_grid`` scales the configured number to the data's grid)."""
    used = sorted({r.get("acs_lines") for r in results["results"] if r.get("acs_lines") is not None})
    return ", ".join(str(a) for a in used) or str(acquisition_section(results["config"]).get("acs_lines"))


def _s(value):
    return "-" if value is None else str(value)
