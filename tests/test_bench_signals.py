"""padis-bench stopped from outside (issue 15): kill -9 in one process and under torchrun with two, and SIGINT /
SIGTERM. A rerun computes no finished item again (its record, timing included, is kept as written) and ends
with the results of an uninterrupted run. Real subprocesses on tiny synthetic data (32 x 32, 4 coils)."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from padis_plugin.cli.bench import main
from padis_plugin.data.prepared import write_prepared

ITEMS = 12        # 2 slices x 6 mask seeds
KILL_AFTER = 2    # finished records on disk before the signal


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    from helpers import make_slice

    root = tmp_path_factory.mktemp("signals")
    slices = [dataclasses.replace(make_slice(n=32, coils=4, acs=8, seed=i), id=f"vol{i}:0", patient_id=f"p{i}")
              for i in range(2)]
    data = write_prepared(root / "tiny.h5", slices)
    # wavelet-l1: a registered solver that is bitwise reproducible and slow enough (about 0.1-1 s per item) to
    # be stopped between items
    cfg = {"name": "signals", "device": "cpu", "data": {"path": str(data)},
           "masks": {"accelerations": [4], "acs_lines": 4, "seeds": list(range(6))},
           "solvers": [{"name": "wavelet-l1", "label": "W", "params": {"iterations": 80}}],
           "output": {"figures": False}}
    path = root / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def uninterrupted(config, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "out"
    assert main(["--config", str(config), "--out", str(out), "--no-progress"]) == 0
    return _results(out)


def _results(out):
    return json.loads((out / "results.json").read_text())["results"]


def _records(out):
    lines = []
    for part in sorted((out / "partial").glob("*.jsonl")):
        lines += [json.loads(x) for x in part.read_text().splitlines() if x.strip().endswith("}")]
    return lines


def _bench_cmd(config, out, ranks=1):
    prefix = [sys.executable]
    if ranks > 1:
        prefix += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    return prefix + ["-m", "padis_plugin.cli.bench", "--config", str(config), "--out", str(out), "--no-progress"]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def _descendants(pid):
    """Every process below ``pid`` (Linux /proc; torchrun may start its workers outside the group)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in os.listdir(f"/proc/{p}/task") if os.path.isdir(f"/proc/{p}/task") else []:
            try:
                with open(f"/proc/{p}/task/{task}/children") as f:
                    kids = [int(c) for c in f.read().split()]
            except OSError:
                kids = []
            found += kids
            todo += kids
    return found


def _sigint_default():
    """A job started in the background of a non-interactive shell inherits SIGINT ignored (as CI may start this
    suite), and Python then keeps ignoring it: the bench, like one started from a terminal, gets the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_and_signal(config, out, sig, ranks=1):
    """Start the bench in its own process group; once KILL_AFTER records are on disk, send ``sig`` to the group."""
    proc = subprocess.Popen(_bench_cmd(config, out, ranks), env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=_sigint_default)
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "partial").is_dir() and len(_records(out)) >= KILL_AFTER:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the benchmark ended before it could be stopped:\n" + proc.stderr.read()[-2000:]
    for pid in _descendants(proc.pid) if sig == signal.SIGKILL else []:
        os.kill(pid, sig)                  # torchrun's workers: killed with the agent, not left to finish
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def _item(r):
    return r["id"], r["solver"], r["R"], r["seed"]


def _check_resumed(config, out, uninterrupted, ranks=1):
    before = {_item(r): r["seconds"] for r in _records(out)}
    assert KILL_AFTER <= len(before) < ITEMS, "stopped too late to test a resume"
    assert not (out / "results.json").exists()
    proc = subprocess.run(_bench_cmd(config, out, ranks), env=_env(), capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr[-2000:]
    after = _results(out)
    # a finished item is not computed again: its record comes back as written, its measured seconds included
    seconds = {_item(r): r["seconds"] for r in after}
    assert all(seconds[k] == s for k, s in before.items())
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(after) == strip(uninterrupted)


def test_kill_9_single_process_resumes_without_recomputing(config, uninterrupted, tmp_path):
    out = tmp_path / "out"
    rc, _ = _start_and_signal(config, out, signal.SIGKILL)
    assert rc == -signal.SIGKILL
    _check_resumed(config, out, uninterrupted)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="torchrun; /proc to find its workers")
def test_kill_9_under_torchrun_two_processes_resumes_without_recomputing(config, uninterrupted, tmp_path):
    out = tmp_path / "out"
    _start_and_signal(config, out, signal.SIGKILL, ranks=2)
    _check_resumed(config, out, uninterrupted, ranks=2)


@pytest.mark.parametrize("sig, reason", [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")])
def test_sigint_and_sigterm_stop_cleanly_and_say_how_to_continue(config, uninterrupted, tmp_path, sig, reason):
    out = tmp_path / "out"
    rc, err = _start_and_signal(config, out, sig)
    assert rc == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == (f"error: {reason}; finished items are saved, "
                                            "rerun the same command to resume")
    assert "Traceback" not in err
    _check_resumed(config, out, uninterrupted)
