"""padis-study create: cases from bench output folders, stratified and blinded, and its bad inputs."""
from __future__ import annotations

import json
import sqlite3
from collections import Counter

import numpy as np
import pytest

from padis_plugin.errors import ConfigError, DataError
from padis_plugin.study import create, db
from study_fixtures import SOLVERS, make_bench

GROUP = list(SOLVERS)


def _rows(study, sql):
    con = sqlite3.connect(study / db.DB_NAME)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_paths_agree_with_the_bench():
    from padis_plugin.bench import store as bench
    from pathlib import Path
    args = (Path("o"), "a:1", "PaDIS S=25", 4, 0)
    assert create.recon_path(*args) == bench.recon_path(*args)
    assert create.reference_path(Path("o"), "a:1") == bench.reference_path(Path("o"), "a:1")


def test_create_is_stratified_blinded_and_deterministic(tmp_path):
    bench = make_bench(tmp_path / "bench")
    summary = create.create_study([bench], [GROUP], 4, tmp_path / "study", stratify=["contrast"], seed=3)
    assert summary["available"] == 6 and summary["cases"] == 4
    # 2 cases per contrast available: proportional allocation of 4 over 3 strata gives 2/1/1
    assert sorted(summary["per_stratum"].values()) == [1, 1, 2]
    study = tmp_path / "study"
    key = _rows(study, "SELECT case_no, position, role, label FROM key ORDER BY case_no, position")
    assert len(key) == 12 and {r[3] for r in key} == set(GROUP)
    assert all(sorted(r[2] for r in key if r[0] == c) == [0, 1, 2] for c in range(1, 5))
    orders = {tuple(r[2] for r in key if r[0] == c) for c in range(1, 5)}
    assert len(orders) > 1  # the on-screen order is shuffled per case
    pngs = _rows(study, "SELECT png FROM images")
    assert len(pngs) == 16 and all(p[0][:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert not any(lab.encode() in p[0] for p in pngs for lab in GROUP)  # no label in any served byte
    create.create_study([bench], [GROUP], 4, tmp_path / "again", stratify=["contrast"], seed=3)
    assert _rows(tmp_path / "again", "SELECT * FROM key ORDER BY case_no, position") == \
        _rows(study, "SELECT * FROM key ORDER BY case_no, position")


def test_two_groups_are_matched_by_position(tmp_path):
    a = make_bench(tmp_path / "a", slices=(("s1:0", "T2"),), seeds=(0, 1))
    big = {"PaDIS S=100": 0.01, "EDM S=100": 0.05, "Wavelet-L1": 0.15}
    b = make_bench(tmp_path / "b", slices=(("s9:0", "T2"),), seeds=(0, 1), solvers=big)
    summary = create.create_study([a, b], [GROUP, list(big)], 4, tmp_path / "study", stratify=["training_size"])
    assert summary["per_stratum"] == {"training_size=25": 2, "training_size=100": 2}
    con = db.open_study(tmp_path / "study")
    info = db.meta(con)
    assert info["roles"][0] == "PaDIS S=25 / PaDIS S=100" and info["roles"][2] == "Wavelet-L1"
    roles = con.execute("SELECT label, role FROM key").fetchall()
    con.close()
    assert {(r[0], r[1]) for r in roles} >= {("PaDIS S=100", 0), ("PaDIS S=25", 0), ("Wavelet-L1", 2)}


def test_reference_from_prepared_data_when_not_saved(tmp_path):
    bench = make_bench(tmp_path / "bench", save_reference=False)
    with pytest.raises(DataError, match="no reference image.*--data"):
        create.create_study([bench], [GROUP], 2, tmp_path / "study")
    assert not (tmp_path / "study" / db.DB_NAME).exists()  # nothing half-made


def test_results_folder_without_saved_reconstructions(tmp_path):
    bench = make_bench(tmp_path / "bench")
    import shutil
    shutil.rmtree(bench / "recons")
    with pytest.raises(DataError, match="no saved reconstructions.*save_recons"):
        create.create_study([bench], [GROUP], 2, tmp_path / "study")
    with pytest.raises(DataError, match="no results.json"):
        create.create_study([tmp_path], [GROUP], 2, tmp_path / "study")


def test_solvers_missing_from_some_cases_are_skipped_and_named(tmp_path):
    bench = make_bench(tmp_path / "bench", skip={("s1:0", "EDM S=25", 0), ("s2:0", "Wavelet-L1", 1)})
    cases, notes = create.find_cases([bench], [GROUP])
    assert len(cases) == 4
    assert any("EDM S=25" in n for n in notes) and any("Wavelet-L1" in n for n in notes)
    # a recon file deleted after the run counts as missing too
    (bench / "recons" / "s3_0" / "PaDIS_S_25_R4_seed0.npy").unlink()
    assert len(create.find_cases([bench], [GROUP])[0]) == 3
    with pytest.raises(ConfigError, match="'SENSE' in none of the results"):
        create.find_cases([bench], [["PaDIS S=25", "SENSE", "Wavelet-L1"]])


def test_more_cases_than_available(tmp_path):
    bench = make_bench(tmp_path / "bench")
    with pytest.raises(ConfigError, match="--cases 7, but only 6"):
        create.create_study([bench], [GROUP], 7, tmp_path / "study")
    assert not (tmp_path / "study").exists()


def test_bad_options(tmp_path):
    bench = make_bench(tmp_path / "bench")
    with pytest.raises(ConfigError, match="unknown key"):
        create.create_study([bench], [GROUP], 2, tmp_path / "s", stratify=["scanner"])
    with pytest.raises(ConfigError, match="same number of methods"):
        create.create_study([bench], [GROUP, GROUP[:2]], 2, tmp_path / "s")


def test_an_existing_study_is_never_overwritten(tmp_path):
    bench = make_bench(tmp_path / "bench")
    create.create_study([bench], [GROUP], 2, tmp_path / "study")
    before = (tmp_path / "study" / db.DB_NAME).read_bytes()
    with pytest.raises(ConfigError, match="already here"):
        create.create_study([bench], [GROUP], 3, tmp_path / "study")
    assert (tmp_path / "study" / db.DB_NAME).read_bytes() == before


def test_allocation_is_proportional():
    rng = np.random.default_rng(0)
    assert create.allocate({"T2": 30, "T1": 20}, 10, rng) == {"T2": 6, "T1": 4}
    assert sum(create.allocate({"a": 1, "b": 1, "c": 1}, 2, rng).values()) == 2


def test_cli_create(tmp_path, capsys):
    from padis_plugin.cli.study import main
    bench = make_bench(tmp_path / "bench")
    assert main(["create", "--results", str(bench), "--solvers", *GROUP, "--cases", "3", "--stratify", "contrast",
                 "--out", str(tmp_path / "study")]) == 0
    assert "3 of 6 available cases" in capsys.readouterr().out
    assert main(["create", "--results", str(bench), "--solvers", *GROUP, "--cases", "9",
                 "--out", str(tmp_path / "s2")]) == 2
    assert "error: --cases 9, but only 6" in capsys.readouterr().err


def test_fixed_quotas_per_training_size(tmp_path):
    """The paper's design in miniature: per training-set size, a fixed count of T2 and of T1/FLAIR cases."""
    slices = (("s1:0", "T2"), ("s2:0", "T2"), ("s3:0", "T1"), ("s4:0", "FLAIR"))
    a = make_bench(tmp_path / "a", slices=slices)
    big = {"PaDIS S=100": 0.01, "EDM S=100": 0.05, "Wavelet-L1": 0.15}
    b = make_bench(tmp_path / "b", slices=slices, solvers=big)
    summary = create.create_study([a, b], [GROUP, list(big)], 10, tmp_path / "study",
                                  stratify=["contrast", "training_size"], seed=1,
                                  quotas=["contrast=T2:3", "contrast=T1|FLAIR:2"])
    assert summary["cases"] == 10
    per = summary["per_stratum"]
    assert per["contrast=T2 training_size=25"] == per["contrast=T2 training_size=100"] == 3
    for size in ("25", "100"):
        assert per.get(f"contrast=T1 training_size={size}", 0) + per.get(f"contrast=FLAIR training_size={size}", 0) == 2
    info = db.meta(db.open_study(tmp_path / "study"))
    assert info["quotas"] == ["contrast=T2:3", "contrast=T1|FLAIR:2"]
    with pytest.raises(ConfigError, match="quotas ask for 10"):
        create.create_study([a, b], [GROUP, list(big)], 8, tmp_path / "s2", stratify=["contrast", "training_size"],
                            quotas=["contrast=T2:3", "contrast=T1|FLAIR:2"])
    with pytest.raises(ConfigError, match="only 4 case"):
        create.create_study([a, b], [GROUP, list(big)], 12, tmp_path / "s3", stratify=["contrast", "training_size"],
                            quotas=["contrast=T2:5", "contrast=T1|FLAIR:1"])
    for bad in ("contrast=T2", "scanner=A:2", "contrast=:3", "contrast=T2:0"):
        with pytest.raises(ConfigError, match="expected KEY=VALUE"):
            create.parse_quota(bad)
    with pytest.raises(ConfigError, match="one of --stratify"):
        create.create_study([a], [GROUP], 3, tmp_path / "s4", stratify=["training_size"], quotas=["contrast=T2:3"])
    assert not any((tmp_path / s).exists() for s in ("s2", "s3", "s4"))


def test_a_full_disk_during_create_leaves_nothing_and_the_rerun_works(tmp_path, monkeypatch):
    """SQLite's "database or disk is full" while the study is written: one DataError naming the database,
    no study.sqlite (nor -wal / -shm) left, so the same command works once there is room."""
    bench = make_bench(tmp_path / "bench")
    real = db.transaction

    def full_disk(con):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(db, "transaction", full_disk)
    with pytest.raises(DataError, match=r"study\.sqlite: cannot write the study database \(database or disk is "
                                        r"full\); nothing was kept"):
        create.create_study([bench], [GROUP], 2, tmp_path / "study")
    assert not [p for p in (tmp_path / "study").iterdir() if p.name.startswith(db.DB_NAME)]
    monkeypatch.setattr(db, "transaction", real)
    assert create.create_study([bench], [GROUP], 2, tmp_path / "study")["cases"] == 2
