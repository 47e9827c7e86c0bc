"""``analyze``: unblind a study into the paper's Table-2 form: how often a chosen method was picked, by the
reader majority (>= 2 of 3) per image and by each reader, overall and per stratum, with Wilson 95% CIs and
one-sided exact binomial p-values against chance (p0 = 1/k per reader; p0 = P(majority by chance), 7/27 for
3 readers and 3 methods), Fleiss' kappa between readers, and a bar chart."""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, write_json, write_text
from ..errors import ConfigError, DataError, where
from . import db, stats

ALL = "all"


def load_answers(study, readers=None) -> tuple[dict, dict, dict]:
    """(meta, cases ``{case_no: strata}``, votes ``{reader: {case_no: role}}``), unblinded through the key."""
    con = db.open_study(study, readonly=True)
    try:
        info = db.meta(con)
        cases = {r["case_no"]: json.loads(r["strata"]) for r in con.execute("SELECT case_no, strata FROM cases")}
        key = {(r["case_no"], r["position"]): r["role"] for r in con.execute("SELECT case_no, position, role FROM key")}
        votes = defaultdict(dict)
        for r in con.execute("SELECT reader, case_no, position FROM answers ORDER BY reader, case_no"):
            votes[r["reader"]][r["case_no"]] = key[(r["case_no"], r["position"])]
    finally:
        con.close()
    if readers:
        unknown = [r for r in readers if r not in votes]
        if unknown:
            raise ConfigError(f"--readers: no answers from {', '.join(unknown)} (readers with answers: "
                              f"{', '.join(sorted(votes)) or 'none'})")
        votes = {r: votes[r] for r in readers}
    if not votes:
        raise DataError(where(db.db_path(study), "no answers yet"))
    return info, cases, dict(votes)


def method_role(info: dict, method) -> int:
    """Role index of ``method``: a solver label of any group, a role name, or a 0-based index."""
    if method is None:
        return 0
    for i, name in enumerate(info["roles"]):
        if method == name or any(g[i] == method for g in info["groups"]):
            return i
    if str(method).isdigit() and int(method) < info["k"]:
        return int(method)
    raise ConfigError(f"--method {method!r}: not a method of this study ({'; '.join(info['roles'])})")


def _strata(info, cases) -> list[tuple[str, str, set]]:
    """(key, value, case numbers): ``all``, then each value of each stratify key, then their combinations."""
    out = [(ALL, ALL, set(cases))]
    keys = info["stratify"]
    for k in keys:
        for v in sorted({s[k] for s in cases.values()}):
            out.append((k, v, {c for c, s in cases.items() if s[k] == v}))
    if len(keys) > 1:
        for combo in sorted({tuple(s[k] for k in keys) for s in cases.values()}):
            out.append(("+".join(keys), " ".join(combo),
                        {c for c, s in cases.items() if tuple(s[k] for k in keys) == combo}))
    return out


def analyze_study(study, method=None, readers=None) -> dict:
    """The report dict of study folder ``study`` for ``method`` (default: the first of every group)."""
    info, cases, votes = load_answers(study, readers)
    role, k = method_role(info, method), info["k"]
    names = sorted(votes)
    complete = sorted(c for c in cases if all(c in votes[r] for r in names))
    warnings = [f"reader {r} answered {len(votes[r])} of {len(cases)} cases" for r in names
                if len(votes[r]) < len(cases)]
    need, p_major = stats.majority_needed(len(names)), stats.majority_chance(len(names), k)
    rows = []
    for key, value, members in _strata(info, cases):
        row = {"stratum": key, "value": value, "cases": len(members)}
        both = [c for c in complete if c in members]
        row["by_method"] = {}
        for m, name in enumerate(info["roles"]):
            row["by_method"][name] = {
                "majority": stats.proportion(sum(sum(votes[r][c] == m for r in names) >= need for c in both),
                                             len(both), p_major),
                "readers": {r: stats.proportion(sum(votes[r][c] == m for c in members if c in votes[r]),
                                                sum(c in votes[r] for c in members), 1.0 / k) for r in names}}
        row["majority"] = row["by_method"][info["roles"][role]]["majority"]
        row["readers"] = row["by_method"][info["roles"][role]]["readers"]
        row["shares"] = {info["roles"][m]: _share(votes, names, members, m) for m in range(k)}
        choices = np.array([[votes[r][c] for r in names] for c in both]).reshape(len(both), len(names))
        row["fleiss_kappa"] = stats.fleiss_kappa(choices, k) if len(names) > 1 else math.nan
        rows.append(row)
    return {"study": str(study), "method": info["roles"][role], "methods": info["roles"], "k": k,
            "readers": names, "majority_rule": f">= {need} of {len(names)} readers",
            "p0": {"reader": 1.0 / k, "majority": p_major}, "complete_cases": len(complete),
            "n_cases": len(cases), "warnings": warnings, "rows": rows,
            "seconds_median": {r: _median_seconds(study, r) for r in names}}


def _share(votes, names, members, m) -> float:
    picks = [votes[r][c] == m for r in names for c in members if c in votes[r]]
    return float(np.mean(picks)) if picks else math.nan


def _median_seconds(study, reader) -> float | None:
    con = db.open_study(study, readonly=True)
    try:
        secs = [r[0] for r in con.execute("SELECT COALESCE(seconds, server_seconds) FROM answers WHERE reader = ?",
                                          (reader,))]
    finally:
        con.close()
    return float(np.median(secs)) if secs else None


# ------------------------------------------------------------------------------------------ output
def _cell(p: dict) -> str:
    if not p["n"]:
        return "-"
    lo, hi = p["ci95"]
    pv = p["p_value"]
    ptxt = "< 0.001" if pv < 0.001 else f"{pv:.3f}"
    return f"{p['k']}/{p['n']} ({100 * p['rate']:.1f}%) [{100 * lo:.1f}, {100 * hi:.1f}] p {ptxt}"


def report_markdown(rep: dict) -> str:
    lines = [f"# Reader study: preference for {rep['method']}", "",
             f"- study `{rep['study']}`: {rep['n_cases']} cases, {rep['k']} methods ({'; '.join(rep['methods'])}), "
             f"readers {', '.join(rep['readers'])}; {rep['complete_cases']} cases answered by every reader",
             f"- each cell: chosen/answered (%), Wilson 95% CI, one-sided exact binomial p against chance "
             f"(p0 = {rep['p0']['reader']:.4g} per reader; p0 = {rep['p0']['majority']:.4g} for the image-level "
             f"majority, {rep['majority_rule']})", ""]
    lines += [f"- warning: {w}" for w in rep["warnings"]] + ([""] if rep["warnings"] else [])
    head = ["Stratum", "N", "Majority"] + [f"Reader {r}" for r in rep["readers"]] + ["Fleiss κ"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rep["rows"]:
        name = "All" if row["stratum"] == ALL else f"{row['stratum']} = {row['value']}"
        kappa = "-" if math.isnan(row["fleiss_kappa"]) else f"{row['fleiss_kappa']:.2f}"
        cells = [name, str(row["cases"]), _cell(row["majority"])] + [_cell(row["readers"][r]) for r in rep["readers"]]
        lines.append("| " + " | ".join(cells + [kappa]) + " |")
    lines += ["", "## Share of all votes per method", "", "| Stratum | " + " | ".join(rep["methods"]) + " |",
              "|" + "---|" * (len(rep["methods"]) + 1)]
    for row in rep["rows"]:
        name = "All" if row["stratum"] == ALL else f"{row['stratum']} = {row['value']}"
        lines.append(f"| {name} | " + " | ".join(f"{100 * row['shares'][m]:.1f}%" for m in rep["methods"]) + " |")
    lines += ["", "Median time per case (s): " + ", ".join(
        f"{r} {s:.1f}" for r, s in rep["seconds_median"].items() if s is not None), ""]
    return "\n".join(lines)


def bar_chart(rep: dict, path) -> None:
    """Share of cases in which each method was chosen, per reader and by majority (overall), with Wilson CIs."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    overall = rep["rows"][0]
    groups = ["Majority"] + [f"Reader {r}" for r in rep["readers"]]
    fig, ax = plt.subplots(figsize=(2.4 + 1.6 * len(groups), 4.2), dpi=120)
    width = 0.8 / len(rep["methods"])
    for m, name in enumerate(rep["methods"]):
        by = overall["by_method"][name]
        props = [by["majority"]] + [by["readers"][r] for r in rep["readers"]]
        rates = [100 * p["rate"] for p in props]
        err = np.array([[100 * (p["rate"] - p["ci95"][0]), 100 * (p["ci95"][1] - p["rate"])] for p in props]).T
        err = np.nan_to_num(np.clip(err, 0, None))  # the bound may sit 1e-16 inside the rate; no answers: none
        rates = np.nan_to_num(rates)
        ax.bar(np.arange(len(groups)) + (m - (len(rep["methods"]) - 1) / 2) * width, rates, width, yerr=err,
               capsize=3, label=name, edgecolor="black" if name == rep["method"] else "none")
    ax.axhline(100 * rep["p0"]["reader"], color="grey", linestyle="--", linewidth=1,
               label=f"chance for one reader (1/{rep['k']})")
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set_ylabel("cases chosen (%)")
    ax.set_ylim(0, 105)
    ax.set_title(f"Preferred reconstruction (N = {overall['cases']}), 95% Wilson CI", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_report(study, out=None, method=None, readers=None) -> dict:
    """Write ``report.md``, ``report.json`` and ``preference.png`` into ``out`` (default ``<study>/report``)."""
    out = Path(out) if out is not None else Path(study) / "report"
    rep = analyze_study(study, method, readers)
    write_json(out / "report.json", _finite(rep))
    write_text(out / "report.md", report_markdown(rep))
    bar_chart(rep, out / "preference.png")
    return rep


def _finite(obj):
    """NaN -> None (valid JSON)."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj
