"""padis-study analyze: the statistics against the paper's published numbers, and the unblinded report."""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from padis_plugin.errors import ConfigError, DataError
from padis_plugin.study import analyze, create, db, stats
from study_fixtures import SOLVERS, make_bench


def test_wilson_intervals_match_the_paper():
    # Table 2 of PaDIS-MRI: PaDIS chosen in 55/60 cases, 95% CI [81.9, 96.4]%; 30/30 per training size [88.7, 100]
    assert [round(100 * v, 1) for v in stats.wilson(55, 60)] == [81.9, 96.4]
    lo, hi = stats.wilson(30, 30)
    # 30/(30 + 1.96^2) = 0.88649: the paper's 88.7 is this rounded twice (0.8865 -> 88.7%); to 2 decimals 88.65
    assert round(100 * lo, 2) == 88.65 and abs(100 * lo - 88.7) < 0.06 and hi == pytest.approx(1.0)


def test_chance_of_a_majority_and_exact_p_values():
    assert stats.majority_chance(3, 3) == pytest.approx(7 / 27)
    assert stats.majority_chance(2, 3) == pytest.approx(1 / 9)  # two readers: both must agree
    assert stats.majority_needed(3) == 2 and stats.majority_needed(4) == 3
    assert stats.binomial_p(55, 60, 7 / 27) < 0.001
    assert stats.binomial_p(1, 3, 1 / 3) == pytest.approx(1 - (2 / 3) ** 3)  # P(X >= 1)
    assert stats.binomial_p(0, 10, 1 / 3) == pytest.approx(1.0)


def test_fleiss_kappa():
    assert stats.fleiss_kappa(np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2]]), 3) == pytest.approx(1.0)
    assert math.isnan(stats.fleiss_kappa(np.zeros((5, 3), int), 3))  # one method throughout: undefined
    # by hand: 4 cases x 2 readers, agreement on half the cases, P = 0.5, Pe = 0.5 -> kappa 0
    assert stats.fleiss_kappa(np.array([[0, 0], [0, 1], [1, 1], [1, 0]]), 2) == pytest.approx(0.0, abs=1e-12)


def _answer_all(study, plan):
    """plan: reader -> list of roles chosen per case (case 1..N); answers given through db, as the server does."""
    con = db.open_study(study)
    key = {(r["case_no"], r["role"]): r["position"] for r in con.execute("SELECT case_no, role, position FROM key")}
    for reader, roles in plan.items():
        token = db.login(con, reader)
        assert db.reader_of(con, token) == reader
        for case_no, role in enumerate(roles, start=1):
            db.case_view(con, reader, case_no)
            db.record_answer(con, study, reader, case_no, key[(case_no, role)], seconds=1.0 + case_no)
    con.close()


def test_report_counts_cis_and_strata(tmp_path):
    bench = make_bench(tmp_path / "bench")
    create.create_study([bench], [list(SOLVERS)], 6, tmp_path / "study", stratify=["contrast"], seed=1)
    study = tmp_path / "study"
    plan = {"A": [0, 0, 0, 0, 0, 1], "B": [0, 0, 0, 0, 1, 1], "C": [0, 0, 0, 2, 2, 2]}
    _answer_all(study, plan)
    rep = analyze.write_report(study, out=tmp_path / "report")
    overall = rep["rows"][0]
    assert rep["method"] == "PaDIS S=25" and overall["cases"] == 6
    assert overall["majority"]["k"] == 4 and overall["majority"]["n"] == 6  # cases 1-4 have >= 2 votes for 0
    assert overall["majority"]["p0"] == pytest.approx(7 / 27)
    assert [overall["readers"][r]["k"] for r in "ABC"] == [5, 4, 3]
    assert overall["readers"]["A"]["ci95"] == pytest.approx(list(stats.wilson(5, 6)))
    assert overall["readers"]["A"]["p_value"] == pytest.approx(stats.binomial_p(5, 6, 1 / 3))
    choices = np.array([[plan[r][c] for r in "ABC"] for c in range(6)])
    assert overall["fleiss_kappa"] == pytest.approx(stats.fleiss_kappa(choices, 3))
    strata = {row["value"]: row for row in rep["rows"][1:]}
    assert set(strata) == {"T1", "T2", "FLAIR"} and sum(r["cases"] for r in strata.values()) == 6
    # another method by label: EDM was the majority choice in case 6 only (A and B voted 1)
    assert analyze.analyze_study(study, method="EDM S=25")["rows"][0]["majority"]["k"] == 1
    out = tmp_path / "report"
    md = (out / "report.md").read_text()
    assert "4/6 (66.7%)" in md and "Reader A" in md and "Fleiss" in md
    assert json.loads((out / "report.json").read_text())["rows"][0]["readers"]["B"]["k"] == 4
    assert (out / "preference.png").read_bytes()[:4] == b"\x89PNG"


def test_incomplete_readers_and_bad_options(tmp_path):
    bench = make_bench(tmp_path / "bench")
    create.create_study([bench], [list(SOLVERS)], 3, tmp_path / "study")
    study = tmp_path / "study"
    with pytest.raises(DataError, match="no answers yet"):
        analyze.analyze_study(study)
    _answer_all(study, {"A": [0, 0, 0], "B": [0, 1]})
    rep = analyze.analyze_study(study)
    assert rep["complete_cases"] == 2 and rep["rows"][0]["majority"]["n"] == 2
    assert rep["warnings"] == ["reader B answered 2 of 3 cases"]
    with pytest.raises(ConfigError, match="not a method"):
        analyze.analyze_study(study, method="SENSE")
    with pytest.raises(ConfigError, match="no answers from Z"):
        analyze.analyze_study(study, readers=["Z"])


def test_statistics_equal_statsmodels_reference_values():
    """Wilson intervals and Fleiss' kappa are computed here (no statsmodels dependency); these are the values
    statsmodels 0.14 gives for the same inputs (``proportion_confint(method="wilson")``, ``fleiss_kappa``)."""
    assert stats.wilson(55, 60) == pytest.approx((0.8193105798166558, 0.9638795433982692), abs=1e-12)
    assert stats.wilson(7, 9) == pytest.approx((0.45258896910698887, 0.9367748928821533), abs=1e-12)
    assert stats.wilson(0, 10) == pytest.approx((0.0, 0.27753279986288926), abs=1e-12)
    choices = np.array([[0, 1, 1], [2, 2, 2], [0, 0, 1], [1, 1, 1], [0, 2, 2], [2, 1, 0]])
    assert stats.fleiss_kappa(choices, 3) == pytest.approx(0.24299065420560745, abs=1e-12)
