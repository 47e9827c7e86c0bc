"""padis-study create on a real (tiny) padis-bench run: the bench saves the reference beside the recons, and
the study is built from its results.json and recons/ alone."""
from __future__ import annotations

import dataclasses

import numpy as np
import yaml

from padis_plugin.cli.bench import main as bench_main
from padis_plugin.data.prepared import PreparedDataset, write_prepared
from padis_plugin.study import create, db


def test_study_from_a_bench_run(tmp_path):
    from helpers import make_slice
    slices = [dataclasses.replace(make_slice(n=32, coils=4, acs=8, seed=i), id=f"vol{i}:0", contrast=c,
                                  patient_id=f"p{i}") for i, c in enumerate(["T1", "T2"])]
    data = write_prepared(tmp_path / "tiny.h5", slices)
    labels = ["ZF a", "ZF b", "ZF c"]  # three labels, one cheap solver: the layout is what is tested
    cfg = {"name": "tiny", "device": "cpu", "data": {"path": str(data)},
           "masks": {"accelerations": [4], "acs_lines": 4, "seeds": [0, 1]},
           "solvers": [{"name": "zero-filled", "label": lab} for lab in labels],
           "output": {"figures": False, "save_recons": True}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "bench"
    assert bench_main(["--config", str(tmp_path / "c.yaml"), "--out", str(out), "--no-progress"]) == 0
    ref = np.load(out / "recons" / "vol1_0" / "reference.npy")
    np.testing.assert_array_equal(ref, PreparedDataset(data)["vol1:0"].reference)
    data.unlink()  # the study needs only the bench folder now
    summary = create.create_study([out], [labels], 4, tmp_path / "study", stratify=["contrast"])
    assert summary["per_stratum"] == {"contrast=T1": 2, "contrast=T2": 2}
    con = db.open_study(tmp_path / "study")
    assert db.n_cases(con) == 4
    con.close()
