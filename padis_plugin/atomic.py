"""Atomic file output: write to a temporary file beside the target, then rename.

An interrupted or failing write never leaves a half-written file under the final name, and the temporary file
is removed on any exception (a ``kill -9`` can still leave one behind: :func:`clean_stale_temps` removes those).
An :class:`OSError` of a write names the target file (not its temporary). Also here: append-only JSONL files
that tolerate a torn last line (:func:`read_jsonl`, :func:`repair_jsonl`) and an output-folder lock
(:class:`FolderLock`) that keeps two processes from writing one folder at once.

Temporary files are named ``.<target name>.<8 random characters><suffix>.tmp`` (:data:`TEMP_PATTERN`).
"""
from __future__ import annotations

import contextlib
import errno as _errno
import json
import os
import re
import socket
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from .errors import ConfigError, DataError, where

# Our temporary files: "." + target name + "." + mkstemp's 8 random characters + suffix, ending in ".tmp"
TEMP_PATTERN = re.compile(r"^\..+\.[a-z0-9_]{8}[^/]*\.tmp$")
LOCK_NAME = ".padis.lock"


def _relabel(exc: OSError, temps: dict[str, Path]) -> OSError:
    """``exc`` naming the target file instead of one of our temporaries (or, with one target, nothing); numpy's
    short write ("16384 requested and 15856 written", no errno) said as the full disk it is."""
    if exc.errno is None and re.search(r"\d+ requested and \d+ written", str(exc)):
        exc = OSError(_errno.ENOSPC, f"{os.strerror(_errno.ENOSPC)} (a short write: {exc})", exc.filename)
    filename = None if exc.filename is None else str(exc.filename)
    if (filename is not None and filename not in temps) or (filename is None and len(temps) != 1):
        return exc
    target = temps[filename] if filename is not None else next(iter(temps.values()))
    new = OSError(exc.errno, exc.strerror or str(exc), str(target))
    new.__cause__ = exc
    return new


def _safetensors_error(exc: Exception, target: Path) -> OSError | None:
    """safetensors reports I/O failures as SafetensorError("... IoError(Os { code: 28, ... })"): as OSError."""
    if type(exc).__name__ != "SafetensorError":
        return None
    m = re.search(r"code: (\d+)", str(exc))
    code = int(m[1]) if m else _errno.EIO
    new = OSError(code, os.strerror(code), str(target))
    new.__cause__ = exc
    return new


def _new_temp(path: Path, suffix=None) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix + ".tmp" if suffix is None else suffix,
                               dir=path.parent)
    tmp = Path(tmp)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600; give the final file the usual permissions
    finally:
        os.close(fd)
    return tmp


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def make_folder(folder) -> None:
    """``mkdir -p`` whose failure says what is in the way: a symbolic link that leads nowhere (a loop or a missing
    target) or a file, where mkdir only says "File exists"."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        for part in (folder, *folder.parents):
            if part.is_symlink() and not part.exists():
                raise OSError(_errno.ELOOP, "a symbolic link that leads nowhere (a loop or a missing target)",
                              str(part)) from None
            if part.exists() and not part.is_dir():
                raise OSError(_errno.ENOTDIR, "exists and is not a folder", str(part)) from None
        raise


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path in the target's folder; rename it to ``path`` only on success.

    ``suffix``: the temporary's ending (default ``<target suffix>.tmp``), for writers that insist on one.
    The temporary is removed on any exception; OSErrors (and safetensors' I/O errors) name ``path``.
    """
    path = Path(path)
    make_folder(path.parent)
    tmp = None
    try:
        try:
            tmp = _new_temp(path, suffix)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        try:
            yield tmp
            os.replace(tmp, path)
        except OSError as exc:
            raise _relabel(exc, {str(tmp): path})
        except Exception as exc:
            new = _safetensors_error(exc, path)
            if new is None:
                raise
            raise new from exc
    finally:
        if tmp is not None:
            _remove(tmp)


@contextlib.contextmanager
def hdf5_file(path):
    """A new HDF5 file for ``path``, built in memory and written in one go when the block ends without error.

    The HDF5 library crashes the process (a segfault, exit 139) when the disk fills under it, leaving its
    temporary behind; built in memory, the disk only sees plain writes, whose ENOSPC is one :class:`OSError`
    naming ``path`` (the temporary removed, ``path`` untouched). The file is held in memory once more while
    written: the writers here hold their data in memory anyway."""
    import h5py

    f = h5py.File(f"in-memory-{os.getpid()}-{id(path)}.h5", "w", driver="core", backing_store=False)
    try:
        yield f
        f.flush()
        image = f.id.get_file_image()
    finally:
        f.close()
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        out.write(image)


@contextlib.contextmanager
def atomic_paths(paths):
    """All-or-nothing output of several files: yield one temporary per target; only when the block succeeds
    are they renamed, and a failing rename removes the targets renamed before it (an earlier version of such a
    target, replaced in that moment, is lost). Temporaries are removed on any exception."""
    paths = [Path(p) for p in paths]
    temps: list[Path] = []
    try:
        for p in paths:
            make_folder(p.parent)
            try:
                temps.append(_new_temp(p))
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror or str(exc), str(p)) from exc
        names = {str(t): p for t, p in zip(temps, paths)}
        try:
            yield list(temps)
        except OSError as exc:
            raise _relabel(exc, names)
        done = []
        try:
            for tmp, p in zip(temps, paths):
                os.replace(tmp, p)
                done.append(p)
        except OSError as exc:
            for p in done:
                _remove(p)
            raise _relabel(exc, names)
    finally:
        for t in temps:
            _remove(t)


@contextlib.contextmanager
def naming(target, tmp=None):
    """OSErrors raised in the block that name no file (or the temporary ``tmp``) name ``target`` instead:
    for writes into a temporary of :func:`atomic_paths`."""
    try:
        yield
    except OSError as exc:
        raise _relabel(exc, {str(tmp if tmp is not None else target): Path(target)})


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_to_builtin) + "\n")


def save_npy(path, array) -> None:
    """Write one array as ``.npy`` to exactly ``path`` (given a file name, ``np.save`` would append ".npy");
    for a temporary already held, e.g. from :func:`atomic_paths`."""
    with open(path, "wb") as f:
        np.save(f, array)


def write_npy(path, array) -> None:
    """:func:`save_npy`, atomically."""
    with atomic_path(path) as tmp:
        save_npy(tmp, array)


def write_npz(path, **arrays) -> None:
    """Arrays as one ``.npz`` at exactly ``path``, atomically (``np.savez`` given a name would append ".npz")."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def _to_builtin(obj):
    """JSON fallback for numpy scalars/arrays and paths."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# ----------------------------------------------------------------------------------------- stale temporaries
def clean_stale_temps(folder, names=None, min_age_s: float = 0.0, recursive: bool = False) -> list[Path]:
    """Remove temporaries of our naming (:data:`TEMP_PATTERN`) left in ``folder`` by killed writes.

    ``names``: only temporaries of these target names (default: any); ``min_age_s``: only those not modified
    for that long (a folder another process may be writing to without a lock: its temporaries are fresh);
    ``recursive``: subfolders too (a locked output folder). Returns the removed paths; never raises.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    names = None if names is None else {Path(n).name for n in names}
    removed = []
    now = time.time()
    try:
        candidates = list(folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp"))
    except OSError:
        return []
    for p in candidates:
        if not TEMP_PATTERN.match(p.name):
            continue
        if names is not None and not any(p.name.startswith(f".{n}.") for n in names):
            continue
        try:
            if not p.is_file() or now - p.stat().st_mtime < min_age_s:
                continue
            p.unlink()
            removed.append(p)
        except OSError:
            continue
    return removed


# ------------------------------------------------------------------------------------ append-only JSONL files
def _jsonl_lines(path: Path) -> tuple[list[tuple[int, bytes]], int | None]:
    """(line number, bytes) of every non-empty line that parses, and the number of a torn last line (or None).
    A line that does not parse before the last one is corruption: :class:`DataError` naming file and line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], None
    lines = [(i + 1, ln) for i, ln in enumerate(data.split(b"\n")) if ln.strip()]
    good, torn = [], None
    for k, (lineno, ln) in enumerate(lines):
        try:
            json.loads(ln)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            if k == len(lines) - 1:
                torn = lineno
                break
            raise DataError(where(path, f"line {lineno}: corrupt record (not JSON) before the end of the file; "
                                        "the file is damaged")) from None
        good.append((lineno, ln))
    return good, torn


def _warn_torn(path: Path, lineno: int) -> None:
    warnings.warn(f"{path}: dropping the torn last line {lineno} (an interrupted write)", stacklevel=3)


def read_jsonl(path) -> list:
    """Records of an append-only JSONL file (missing file: none). A torn last line (a write cut short by a
    kill) is dropped with a warning; an unparsable line before it raises :class:`DataError`."""
    path = Path(path)
    good, torn = _jsonl_lines(path)
    if torn is not None:
        _warn_torn(path, torn)
    return [json.loads(ln) for _, ln in good]


def repair_jsonl(path) -> bool:
    """Rewrite ``path`` without a torn last line (with a warning), so appends start on a clean line; True if
    it was torn. Corruption before the last line raises :class:`DataError`."""
    path = Path(path)
    good, torn = _jsonl_lines(path)
    if torn is None:
        return False
    _warn_torn(path, torn)
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"".join(ln + b"\n" for _, ln in good))
    return True


# ------------------------------------------------------------------------------------------------ folder lock
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    except OSError:
        return True
    return True


class FolderLock:
    """Exclusive use of an output folder: ``<folder>/.padis.lock`` created with O_EXCL, holding
    ``<pid> <host>``. A lock of a process that no longer runs (same host) is taken over with a message on
    stderr; a live one raises :class:`ConfigError`. The folder is created if needed (and removed again on
    release if it was created here and is still empty). Use as a context manager."""

    def __init__(self, folder, what: str = "output folder"):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.what = what
        self.held = False
        self._created = False

    def _holder(self) -> tuple[int | None, str | None, float]:
        try:
            text = self.path.read_text()
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return None, None, 0.0
        parts = text.split()
        try:
            return int(parts[0]), (parts[1] if len(parts) > 1 else None), age
        except (IndexError, ValueError):
            return None, None, age

    def acquire(self) -> "FolderLock":
        self._created = not self.folder.exists()
        make_folder(self.folder)
        host = socket.gethostname()
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid, their_host, age = self._holder()
                if pid is None and age < 10:  # being written this moment by its creator, or just removed
                    time.sleep(0.2)
                    continue
                if pid is not None and (their_host not in (None, host) or _pid_alive(pid)):
                    on = f" on {their_host}" if their_host not in (None, host) else ""
                    raise ConfigError(where(self.folder, f"{self.what} is in use by process {pid}{on} (lock "
                                                         f"{self.path.name}); wait for it to finish, or delete "
                                                         "the lock file if that process is gone"))
                who = f"process {pid}, which is no longer running" if pid is not None else "an unreadable lock"
                print(f"{self.folder}: taking over the stale lock of {who}", file=sys.stderr)
                _remove(self.path)
                continue
            try:
                os.write(fd, f"{os.getpid()} {host}\n".encode())
            finally:
                os.close(fd)
            self.held = True
            return self
        raise ConfigError(where(self.folder, f"cannot take the lock {self.path.name} of this {self.what}"))

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        pid, _, _ = self._holder()
        if pid == os.getpid():
            _remove(self.path)
        if self._created:
            with contextlib.suppress(OSError):
                self.folder.rmdir()  # only if empty: a run that failed before writing anything

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
