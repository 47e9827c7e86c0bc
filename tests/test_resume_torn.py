"""Resuming after a kill -9 (issue 15): a torn last line of an append-only file (training log, benchmark
partial files) is dropped with a warning; a damaged line before the end is a DataError naming file and line;
a training folder whose run died before its first checkpoint is started afresh, not left blocked."""
from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from padis_plugin.atomic import read_jsonl, repair_jsonl
from padis_plugin.data.prepared import write_prepared
from padis_plugin.errors import DataError
from padis_plugin.train import read_log

from helpers import run_train, train_config

pytestmark = pytest.mark.usefixtures("one_thread")

TORN = '{"step": 3, "loss": 0.12'   # what a kill in the middle of a write leaves


def test_jsonl_torn_last_line_is_dropped_and_a_damaged_middle_is_an_error(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n' + TORN)
    with pytest.warns(UserWarning, match=r"log.jsonl: dropping the torn last line 3"):
        assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    with pytest.warns(UserWarning):
        assert repair_jsonl(path)
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n' and not repair_jsonl(path)
    path.write_text('{"a": 1}\n' + TORN + '\n{"a": 2}\n')
    with pytest.raises(DataError, match=r"log.jsonl: line 2: corrupt record"):
        read_jsonl(path)
    assert read_jsonl(tmp_path / "missing.jsonl") == []


# ------------------------------------------------------------------------------------------------- train
def test_train_resume_after_a_torn_log_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_train(train_config(tmp_path, steps=2), out) == 0
    log = out / "train_log.jsonl"
    log.write_text(log.read_text() + TORN)          # killed while writing step 3's record
    with pytest.warns(UserWarning, match="torn last line"):
        assert read_log(out) == read_log(out)[:2] and len(read_log(out)) == 2
    with pytest.warns(UserWarning, match="torn last line"):
        assert run_train(train_config(tmp_path, steps=4), out, "--resume") == 0
    assert [r["step"] for r in read_log(out)] == [1, 2, 3, 4]
    # a damaged line in the middle is corruption, reported with file and line
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0], TORN, *lines[1:]]) + "\n")
    assert run_train(train_config(tmp_path, steps=5), out, "--resume") == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {log}: line 2: corrupt record (not JSON) before the end of the file; the file is damaged"


def test_train_killed_before_its_first_checkpoint_restarts(tmp_path, capsys):
    cfg = train_config(tmp_path, steps=2, checkpoint_every=100)
    for resume in ((), ("--resume",)):
        out = tmp_path / f"run{len(resume)}"
        out.mkdir()
        (out / "resolved_config.yaml").write_text(yaml.safe_dump({"kind": "padis"}))
        (out / "train_log.jsonl").write_text('{"step": 1, "loss": 1.0}\n' + TORN)
        (out / "checkpoints").mkdir()
        (out / "checkpoints" / "ckpt_step0000100.safetensors").write_bytes(b"half")  # latest.json never named it
        capsys.readouterr()
        assert run_train(cfg, out, *resume) == 0
        assert "stopped before its first checkpoint; starting it afresh" in capsys.readouterr().err
        assert [r["step"] for r in read_log(out)] == [1, 2]
        assert json.loads((out / "latest.json").read_text())["step"] == 2
        assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
            "ckpt_step0000002.json", "ckpt_step0000002.safetensors"]
    # a folder with a checkpoint still needs --resume, and an empty one has nothing to resume
    assert run_train(cfg, tmp_path / "run0") == 2
    assert "already holds a training run" in capsys.readouterr().err
    assert run_train(cfg, tmp_path / "empty", "--resume") == 2
    assert "no checkpoint to resume from" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------- bench
@pytest.fixture(scope="module")
def bench_data(tmp_path_factory):
    from helpers import make_slice

    slices = [dataclasses.replace(make_slice(n=32, coils=4, acs=8, seed=i), id=f"v{i}:0", patient_id=f"p{i}")
              for i in range(2)]
    return write_prepared(tmp_path_factory.mktemp("bench") / "tiny.h5", slices)


def _bench(tmp_path, data, out):
    from padis_plugin.cli.bench import main

    cfg = {"name": "tiny", "device": "cpu", "data": {"path": str(data)},
           "masks": {"accelerations": [4], "acs_lines": 4, "seeds": [0, 1]},
           "solvers": [{"name": "zero-filled"}], "output": {"figures": False}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return main(["--config", str(path), "--out", str(out), "--no-progress"])


def test_bench_resume_after_a_torn_partial_line(bench_data, tmp_path, capsys):
    out = tmp_path / "out"
    assert _bench(tmp_path, bench_data, out) == 0
    before = json.loads((out / "results.json").read_text())["results"]
    partial = out / "partial" / "rank0.jsonl"
    lines = partial.read_text().splitlines()
    assert len(lines) == 4
    # killed while writing the 3rd record: two finished, one torn; the final outputs never written
    partial.write_text("\n".join(lines[:2]) + "\n" + lines[2][:25])
    (out / "results.json").unlink()
    with pytest.warns(UserWarning, match=r"rank0.jsonl: dropping the torn last line 3"):
        assert _bench(tmp_path, bench_data, out) == 0
    assert [json.loads(x) for x in partial.read_text().splitlines()][:2] == [json.loads(x) for x in lines[:2]]
    assert len(partial.read_text().splitlines()) == 4            # the torn one dropped, two recomputed
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(json.loads((out / "results.json").read_text())["results"]) == strip(before)
    # a damaged record before the end is corruption
    good = partial.read_text().splitlines()
    partial.write_text("\n".join([good[0], good[1][:30], *good[2:]]) + "\n")
    (out / "results.json").unlink()
    capsys.readouterr()
    assert _bench(tmp_path, bench_data, out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {partial}: line 2: corrupt record") and len(err.splitlines()) == 1
