"""Reliability of outputs (issue 15): failed writes (a folder in the way, a read-only or missing folder, a full
disk) end in one line ``error: <path>: <OS error>`` with status 2 and no temporary left; all-or-nothing outputs of
padis-recon; no silent overwrite; one-line argument errors for every tool; stale temporaries cleaned; training
keeps its last good checkpoint and only ``run.keep_last`` checkpoints; a lock keeps two runs out of one folder.

The tests run as root too (chmod cannot make a folder read-only for root): a path below a regular file and
monkeypatched writes raising ENOSPC stand in for it there.
"""
from __future__ import annotations

import dataclasses
import errno
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from padis_plugin import atomic
from padis_plugin.atomic import FolderLock, atomic_path, atomic_paths, clean_stale_temps, write_text
from padis_plugin.data.prepared import write_prepared
from padis_plugin.errors import ConfigError

from helpers import run_train, train_config

pytestmark = pytest.mark.usefixtures("one_thread")


def _temps(folder: Path) -> list[Path]:
    return [p for p in Path(folder).rglob("*") if p.name.endswith(".tmp")]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


# ------------------------------------------------------------------------------------------- atomic writes
def test_atomic_write_failures_name_the_target_and_leave_no_temporary(tmp_path, monkeypatch):
    # the target is a folder
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(IsADirectoryError) as exc:
        write_text(tmp_path / "dir.json", "x")
    assert exc.value.filename == str(tmp_path / "dir.json") and not _temps(tmp_path)
    # the parent is a regular file (root ignores read-only folders; this fails for everyone)
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError) as exc:
        write_text(tmp_path / "file" / "x.json", "x")
    assert str(tmp_path / "file") in str(exc.value.filename)
    # a full disk while writing: the error names the target, not the temporary
    with pytest.raises(OSError) as exc:
        with atomic_path(tmp_path / "full.npy") as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert exc.value.errno == errno.ENOSPC and exc.value.filename == str(tmp_path / "full.npy")
    assert not (tmp_path / "full.npy").exists() and not _temps(tmp_path)
    # any other exception removes the temporary as well
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "boom.txt") as tmp:
            tmp.write_text("x")
            raise RuntimeError("boom")
    assert not _temps(tmp_path)
    if os.geteuid() != 0:  # a read-only folder, where chmod means something
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            with pytest.raises(PermissionError) as exc:
                write_text(ro / "x.json", "x")
            assert exc.value.filename == str(ro / "x.json")
        finally:
            ro.chmod(0o755)


def test_atomic_paths_renames_all_or_none(tmp_path, monkeypatch):
    a, b = tmp_path / "a.npy", tmp_path / "b.png"
    real = os.replace

    def second_fails(src, dst):
        if Path(dst) == b:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", second_fails)
    with pytest.raises(OSError) as exc:
        with atomic_paths([a, b]) as (ta, tb):
            ta.write_text("a")
            tb.write_text("b")
    assert exc.value.filename == str(b)
    assert not a.exists() and not b.exists() and not _temps(tmp_path)


def test_write_npy_writes_exactly_the_named_file(tmp_path):
    """The one .npy saver of recon and bench: no ".npy" appended to another suffix, nothing left beside it."""
    array = (np.arange(6) + 1j).astype(np.complex64).reshape(2, 3)
    atomic.write_npy(tmp_path / "x.tmp", array)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.tmp"]
    loaded = np.load(tmp_path / "x.tmp")
    assert loaded.dtype == np.complex64 and np.array_equal(loaded, array)


def test_safetensors_io_error_becomes_an_oserror_naming_the_file(tmp_path, monkeypatch):
    import safetensors.torch
    from safetensors import SafetensorError

    from padis_plugin.checkpoints import save_checkpoint

    def full_disk(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"torn")
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                              'message: "No space left on device" })')

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(OSError) as exc:
        save_checkpoint(tmp_path / "ckpt", {"g": {"w": torch.zeros(2)}}, {"kind": "x"})
    assert exc.value.errno == errno.ENOSPC and exc.value.filename == str(tmp_path / "ckpt.safetensors")
    assert not list(tmp_path.iterdir())


def test_stale_temporaries_of_our_naming_only_are_removed(tmp_path):
    old = tmp_path / ".x.npy.abcd_123.npy.tmp"      # mkstemp's 8 characters include "_"
    fresh = tmp_path / ".x.npy.zzzzzzzz.npy.tmp"
    other = [tmp_path / ".editor.tmp", tmp_path / "x.npy.tmp", tmp_path / "keep.npy", tmp_path / ".y.abcdefgh.tmp"]
    for p in [old, fresh, *other]:
        p.write_text("")
    os.utime(old, (1, 1))  # untouched for decades: a killed write's leftover
    assert clean_stale_temps(tmp_path, names=["x.npy"], min_age_s=600) == [old]
    assert fresh.exists() and all(p.exists() for p in other)  # fresh: perhaps being written right now
    assert clean_stale_temps(tmp_path, names=["x.npy"]) == [fresh]
    assert [p.name for p in clean_stale_temps(tmp_path)] == [".y.abcdefgh.tmp"]
    assert all(p.exists() for p in other[:3])


# ---------------------------------------------------------------------------------------------- the lock
def test_folder_lock_refuses_a_live_holder_and_takes_over_a_dead_ones(tmp_path, capsys):
    with FolderLock(tmp_path / "out") as lock:
        assert lock.path.read_text().split()[0] == str(os.getpid())
        with pytest.raises(ConfigError, match=rf"in use by process {os.getpid()}"):
            FolderLock(tmp_path / "out").acquire()
    assert not (tmp_path / "out").exists()  # created by the lock, left empty: removed again
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / atomic.LOCK_NAME).write_text(f"{dead} {os.uname().nodename}\n")
    with FolderLock(tmp_path / "out"):
        assert "taking over the stale lock of process " + dead in capsys.readouterr().err
    assert not (tmp_path / "out" / atomic.LOCK_NAME).exists()


# --------------------------------------------------------------------------------------- argument errors
@pytest.mark.parametrize("tool, argv", [
    ("recon", ["x.h5", "--seed", "abc"]),
    ("bench", ["--bogus"]),
    ("train", ["--config", "c.yaml", "--bogus"]),
    ("prepare", ["src", "--out", "x.h5", "--size", "abc"]),
    ("simulate", ["src", "--out", "o", "--seed", "abc"]),
])
def test_argument_errors_are_one_line(tool, argv, capsys):
    main = importlib.import_module(f"padis_plugin.cli.{tool}").main
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = _one_line_error(capsys)
    assert "usage:" not in err


# ------------------------------------------------------------------------------------------------- recon
@pytest.fixture(scope="module")
def recon_data(tmp_path_factory):
    from helpers import make_slice

    return write_prepared(tmp_path_factory.mktemp("recon") / "tiny.h5", [make_slice(n=32, coils=4, acs=8)])


def _recon(data, *more):
    from padis_plugin.cli.recon import main

    return main([str(data), "--solver", "zero-filled", "--acs", "8", *map(str, more)])


def test_recon_failed_png_leaves_no_npy(recon_data, tmp_path, monkeypatch, capsys):
    import padis_plugin.recon as recon

    def full_disk(path, *args, **kwargs):
        Path(path).write_bytes(b"half a png")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(recon, "_figure", full_disk)
    out, png = tmp_path / "x.npy", tmp_path / "x.png"
    assert _recon(recon_data, "--out", out, "--png", png) == 2
    assert _one_line_error(capsys) == f"error: {png}: No space left on device"
    assert list(tmp_path.iterdir()) == []  # neither output, no temporaries


@pytest.mark.parametrize("suffix", [".npy", ".h5"])
def test_recon_output_failures_exit_2_with_one_line(recon_data, tmp_path, monkeypatch, capsys, suffix):
    (tmp_path / f"dir{suffix}").mkdir()
    assert _recon(recon_data, "--out", tmp_path / f"dir{suffix}") == 2
    assert "is a folder" in _one_line_error(capsys)
    (tmp_path / "file").write_text("")
    assert _recon(recon_data, "--out", tmp_path / "file" / f"x{suffix}") == 2
    assert _one_line_error(capsys).startswith(f"error: {tmp_path / 'file'}")
    real = os.replace

    def full_disk(src, dst):
        if Path(dst).suffix == suffix:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", full_disk)
    assert _recon(recon_data, "--out", tmp_path / f"full{suffix}") == 2
    assert _one_line_error(capsys) == f"error: {tmp_path / f'full{suffix}'}: No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"dir{suffix}", "file"]


def test_recon_refuses_to_overwrite_without_the_flag_and_cleans_stale_temps(recon_data, tmp_path, capsys):
    out = tmp_path / "x.npy"
    stale = tmp_path / ".x.npy.k3j2h1g0.npy.tmp"
    stale.write_bytes(b"")
    os.utime(stale, (1, 1))
    assert _recon(recon_data, "--out", out) == 0 and out.is_file() and not stale.exists()
    capsys.readouterr()
    before = out.read_bytes()
    assert _recon(recon_data, "--out", out, "--seed", 3) == 2
    assert "exists; pass --overwrite" in _one_line_error(capsys) and out.read_bytes() == before
    assert _recon(recon_data, "--out", out, "--overwrite") == 0


def test_prepare_and_simulate_refuse_to_overwrite(tmp_path, capsys):
    from padis_plugin.cli.prepare import main as prepare_main
    from padis_plugin.cli.simulate import main as simulate_main

    (tmp_path / "p.h5").write_text("")
    assert prepare_main([str(tmp_path / "raw"), "--out", str(tmp_path / "p.h5"), "--no-progress"]) == 2
    assert "exists; pass --overwrite" in _one_line_error(capsys)
    (tmp_path / "pdir.h5").mkdir()
    assert prepare_main([str(tmp_path / "raw"), "--out", str(tmp_path / "pdir.h5"), "--overwrite"]) == 2
    assert "is a folder" in _one_line_error(capsys)
    (tmp_path / "sim").mkdir()
    (tmp_path / "sim" / "sub_T1.h5").write_text("")
    np.save(tmp_path / "sub.npy", np.ones((1, 8, 8)))
    assert simulate_main([str(tmp_path / "sub.npy"), "--out", str(tmp_path / "sim"), "--no-progress"]) == 2
    assert "sub_T1.h5: exists; pass --overwrite" in _one_line_error(capsys)


# ------------------------------------------------------------------------------------------------- bench
@pytest.fixture(scope="module")
def bench_data(tmp_path_factory):
    from helpers import make_slice

    slices = [dataclasses.replace(make_slice(n=32, coils=4, acs=8, seed=i), id=f"v{i}:0", patient_id=f"p{i}")
              for i in range(2)]
    return write_prepared(tmp_path_factory.mktemp("bench") / "tiny.h5", slices)


def _bench_config(tmp_path, data, **extra) -> Path:
    cfg = {"name": "tiny", "device": "cpu", "data": {"path": str(data)},
           "masks": {"accelerations": [4], "acs_lines": 4, "seeds": [0]},
           "solvers": [{"name": "zero-filled"}], "output": {"figures": False}, **extra}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _bench(path, out, *more):
    from padis_plugin.cli.bench import main

    return main(["--config", str(path), "--out", str(out), "--no-progress", *more])


def test_bench_full_disk_and_blocked_folder(bench_data, tmp_path, monkeypatch, capsys):
    cfg = _bench_config(tmp_path, bench_data)
    (tmp_path / "file").write_text("")
    assert _bench(cfg, tmp_path / "file" / "out") == 2
    assert _one_line_error(capsys).startswith(f"error: {tmp_path / 'file'}")
    real = os.replace

    def results_fail(src, dst):
        if Path(dst).name == "results.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", results_fail)
    out = tmp_path / "out"
    assert _bench(cfg, out) == 2
    assert _one_line_error(capsys) == f"error: {out / 'results.json'}: No space left on device"
    assert not _temps(out) and not (out / atomic.LOCK_NAME).exists()
    monkeypatch.setattr(atomic.os, "replace", real)
    assert _bench(cfg, out) == 0 and (out / "results.json").is_file()  # the finished items were kept


def test_bench_lock_and_nothing_written_on_a_late_config_error(bench_data, tmp_path, capsys):
    from padis_plugin.solvers.registry import register_solver

    out = tmp_path / "out"
    out.mkdir()
    (out / atomic.LOCK_NAME).write_text(f"{os.getppid()} {os.uname().nodename}\n")  # a live process
    assert _bench(_bench_config(tmp_path, bench_data), out) == 2
    assert "in use by process" in _one_line_error(capsys)
    (out / atomic.LOCK_NAME).unlink()
    out.rmdir()

    class Refuses(torch.nn.Module):
        def forward(self, y, physics, generator=None):
            raise ConfigError("test-refusing-solver: cannot handle this grid")

    register_solver("test-refusing-solver")(lambda params=None, device="cpu": Refuses())
    assert _bench(_bench_config(tmp_path, bench_data, solvers=[{"name": "test-refusing-solver"}]), out) == 2
    assert "cannot handle this grid" in _one_line_error(capsys)
    assert not out.exists()  # no resolved_config.json (nor the folder) of a run that never finished an item
    reuse = {"figures": False, "reuse_from": [{"dir": str(tmp_path / "nowhere"), "solvers": {"zero-filled": "x"}}]}
    assert _bench(_bench_config(tmp_path, bench_data, output=reuse), out) == 2
    assert "reuse_from" in _one_line_error(capsys) and not out.exists()


# ------------------------------------------------------------------------------------------------- train
def test_train_full_disk_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    import safetensors.torch
    from safetensors import SafetensorError

    from padis_plugin.checkpoints import load_checkpoint

    real, calls = safetensors.torch.save_file, {"n": 0}

    def full_on_second(tensors, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] == 2:
            Path(filename).write_bytes(b"torn")
            raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")
        return real(tensors, filename, metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", full_on_second)
    out = tmp_path / "run"
    assert run_train(train_config(tmp_path), out) == 2
    ckpts = out / "checkpoints"
    assert _one_line_error(capsys) == f"error: {ckpts / 'ckpt_step0000002.safetensors'}: No space left on device"
    assert json.loads((out / "latest.json").read_text())["step"] == 1
    assert sorted(p.name for p in ckpts.iterdir()) == ["ckpt_step0000001.json", "ckpt_step0000001.safetensors"]
    load_checkpoint(ckpts / "ckpt_step0000001")  # complete (hash verified)
    assert not _temps(out) and not (out / atomic.LOCK_NAME).exists()
    monkeypatch.setattr(safetensors.torch, "save_file", real)
    assert run_train(train_config(tmp_path), out, "--resume") == 0
    assert json.loads((out / "latest.json").read_text())["step"] == 3


def test_train_log_write_failure_names_the_log(tmp_path, monkeypatch, capsys):
    import padis_plugin.train.loop as loop

    def full(log, path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(loop, "_append", full)
    out = tmp_path / "run"
    assert run_train(train_config(tmp_path), out) == 2
    assert _one_line_error(capsys) == f"error: {out / 'train_log.jsonl'}: No space left on device"
    (tmp_path / "blocker").write_text("")
    assert run_train(train_config(tmp_path), tmp_path / "blocker" / "run") == 2
    assert _one_line_error(capsys).startswith(f"error: {tmp_path / 'blocker'}")


def test_keep_last_prunes_old_checkpoints_but_never_latest(tmp_path):
    from padis_plugin.config import load_config
    from padis_plugin.train import TrainConfig
    from padis_plugin.train.loop import Trainer

    out = tmp_path / "run"
    assert run_train(train_config(tmp_path, steps=4, keep_last=2), out) == 0
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == [f"ckpt_step000000{s}.{e}" for s in (3, 4) for e in ("json", "safetensors")]
    assert run_train(train_config(tmp_path, steps=3, keep_last=0), tmp_path / "all") == 0
    assert len(list((tmp_path / "all" / "checkpoints").glob("*.safetensors"))) == 3
    # latest.json pointing at an older checkpoint (e.g. restored by hand): that one is kept regardless
    (out / "latest.json").write_text(json.dumps({"step": 3, "checkpoint": "checkpoints/ckpt_step0000003"}))
    cfg = load_config(TrainConfig, train_config(tmp_path, steps=4, keep_last=1))
    trainer = Trainer(cfg, out)
    deleted = trainer.prune_checkpoints()
    assert deleted == [] and (out / "checkpoints" / "ckpt_step0000003.safetensors").is_file()
    with pytest.raises(ConfigError, match="run.keep_last"):
        load_config(TrainConfig, train_config(tmp_path, keep_last=-1))


def test_train_lock_and_stale_temporaries(tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    stale = out / "checkpoints" / ".ckpt_step0000001.safetensors.abcdefgh.safetensors.tmp"
    stale.write_bytes(b"")
    (out / atomic.LOCK_NAME).write_text(f"{os.getpid()} {os.uname().nodename}\n")
    assert run_train(train_config(tmp_path, steps=1), out) == 2
    assert "in use by process" in _one_line_error(capsys) and stale.exists()
    (out / atomic.LOCK_NAME).write_text("999999999 " + os.uname().nodename + "\n")  # no such process
    assert run_train(train_config(tmp_path, steps=1), out) == 0
    assert "taking over the stale lock" in capsys.readouterr().err
    assert not stale.exists() and not (out / atomic.LOCK_NAME).exists()


_FULL_DISK_PREPARE = r"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)                  # a write past the limit fails (EFBIG), no kill
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))      # a "disk" that fills after 20 kB per file
from padis_plugin.cli.prepare import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_disk_that_fills_under_prepare_is_one_line_not_a_crash(tmp_path, slice_factory):
    """HDF5 crashed the process (exit 139, a segfault) when the disk filled while it wrote, and left its
    temporary behind; the prepared file is now built in memory and written with plain writes: one error line,
    exit 2, nothing left. (A per-file size limit stands in for a full disk: no mount needed.)"""
    from padis_plugin.data.fastmri_format import write_fastmri_h5
    from padis_plugin.kspace import fft2c

    s = slice_factory(32, coils=4, acs=8)
    raw = write_fastmri_h5(tmp_path / "a_AXT1.h5", np.repeat(fft2c(s.coil_maps * s.reference[None])[None], 3, 0),
                           recon_size=(32, 32))
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run([sys.executable, "-c", _FULL_DISK_PREPARE, str(raw), "--out", str(out / "p.h5"),
                           "--size", "32", "--acs", "16", "--noise-region", "4", "--no-cache", "--no-progress"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "p.h5" in lines[0], lines
    assert list(out.iterdir()) == []


def test_an_output_folder_behind_a_symlink_loop_is_named(tmp_path):
    """mkdir's "File exists" said nothing; the message names the link that leads nowhere, or the file in the way."""
    from padis_plugin.atomic import write_json

    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(OSError, match="a symbolic link that leads nowhere") as exc:
        write_json(tmp_path / "a" / "r.json", {})
    assert exc.value.filename == str(tmp_path / "a")
    with pytest.raises(OSError, match="symbolic links"):   # deeper: the system's own ELOOP names it
        write_json(tmp_path / "a" / "x" / "r.json", {})
    (tmp_path / "f").write_text("")
    with pytest.raises(OSError) as exc:
        write_json(tmp_path / "f" / "x" / "r.json", {})
    assert exc.value.errno in (errno.ENOTDIR, errno.EEXIST) and str(tmp_path / "f") in str(exc.value)


def test_numpys_short_write_reads_as_a_full_disk(tmp_path, monkeypatch):
    from padis_plugin.atomic import write_npy

    def short(*args, **kwargs):
        raise OSError("16384 requested and 15856 written")

    monkeypatch.setattr(np, "save", short)
    with pytest.raises(OSError) as exc:
        write_npy(tmp_path / "r.npy", np.zeros(3))
    assert exc.value.errno == errno.ENOSPC and exc.value.filename == str(tmp_path / "r.npy")
    assert str(exc.value).startswith(f"[Errno {errno.ENOSPC}] No space left on device (a short write")
    assert list(tmp_path.iterdir()) == []
