"""The study database: one SQLite file (``study.sqlite``) holding the blinded cases, their images, the
unblinding key, the readers and their answers.

Only this module writes SQL. Every answer is committed in its own transaction before the reader is told it
was stored (WAL journal, ``synchronous=FULL``), so a killed server loses nothing; a second copy of each answer
goes to ``answers.jsonl`` beside the database (positions only, no key) for recovery should the file be damaged.
A damaged or foreign file is refused with a :class:`DataError`, never repaired or overwritten; so is a
read-only study for the server (which must store answers), while ``analyze`` reads one without writing.

Every value a request carries is checked here before it reaches SQL: integers against stated bounds (SQLite
integers are 64-bit; a larger Python int raises ``OverflowError``), comments as UTF-8 text, reader ids against
:data:`READER_ID` as a whole string.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import sqlite3
import time
from pathlib import Path

from ..errors import ConfigError, DataError, where

DB_NAME = "study.sqlite"
ANSWER_LOG = "answers.jsonl"
SCHEMA_VERSION = 1
# A reader's session counts as open in another window while it was heard from this recently (the page pings).
ACTIVE_S = 90.0
# Matched with fullmatch: "$" alone would let a trailing newline through ("r9\n" a second reader "r9").
READER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
MAX_COMMENT = 2000
MAX_SECONDS = 24 * 3600.0
# Largest case number or image position any request may name (checked before SQL; create makes far fewer).
MAX_INDEX = 2 ** 31 - 1
# Comment characters refused: C0/C1 controls other than tab, newline and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE cases (
    case_no INTEGER PRIMARY KEY,           -- 1..N, the order every reader sees
    strata TEXT NOT NULL,                  -- JSON {key: value}, e.g. {"contrast": "T2", "training_size": "25"}
    window_lo REAL NOT NULL,               -- default display window on the 0..255 PNG scale
    window_hi REAL NOT NULL
);
CREATE TABLE images (
    case_no INTEGER NOT NULL REFERENCES cases(case_no),
    position INTEGER NOT NULL,             -- 0: the reference; 1..k: candidates in on-screen order
    png BLOB NOT NULL,
    PRIMARY KEY (case_no, position)
);
CREATE TABLE key (                         -- never served: only analyze reads it
    case_no INTEGER NOT NULL REFERENCES cases(case_no),
    position INTEGER NOT NULL,             -- 1..k
    role INTEGER NOT NULL,                 -- index of the method in every --solvers group
    label TEXT NOT NULL,                   -- the bench's solver label
    source TEXT NOT NULL,                  -- JSON: results folder, slice id, R, mask seed, metrics
    PRIMARY KEY (case_no, position)
);
CREATE TABLE readers (reader TEXT PRIMARY KEY, session TEXT, last_seen REAL, created REAL NOT NULL);
CREATE TABLE views (                       -- when a case was first shown to a reader (server-side timing)
    reader TEXT NOT NULL, case_no INTEGER NOT NULL, first_served REAL NOT NULL, PRIMARY KEY (reader, case_no)
);
CREATE TABLE answers (
    reader TEXT NOT NULL,
    case_no INTEGER NOT NULL REFERENCES cases(case_no),
    position INTEGER NOT NULL,             -- the candidate chosen, as shown (1..k)
    comment TEXT NOT NULL,
    seconds REAL,                          -- time on the case measured by the page
    server_seconds REAL NOT NULL,          -- first served -> answer received
    answered_at REAL NOT NULL,
    PRIMARY KEY (reader, case_no)          -- one vote per reader and case
);
"""
TABLES = {"meta", "cases", "images", "key", "readers", "views", "answers"}


class SessionError(ConfigError):
    """A reader's session is missing, ended (opened in another window), or the id is in use elsewhere."""

    def __init__(self, message, code: str):
        super().__init__(message)
        self.code = code


def db_path(study) -> Path:
    return Path(study) / DB_NAME


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    con.row_factory = sqlite3.Row
    con.execute("PRAGMA busy_timeout = 30000")
    con.execute("PRAGMA synchronous = FULL")
    con.execute("PRAGMA foreign_keys = ON")
    return con


def _connect_readonly(path: Path, immutable: bool = False) -> sqlite3.Connection:
    """A read-only connection (URI ``mode=ro``; the path percent-encoded, so '?' or '#' in it are safe).
    ``immutable``: SQLite takes no locks and ignores any write-ahead log; only for a study nothing can write."""
    uri = Path(os.path.abspath(path)).as_uri() + "?mode=ro" + ("&immutable=1" if immutable else "")
    con = sqlite3.connect(uri, uri=True, timeout=30.0, check_same_thread=False)
    con.row_factory = sqlite3.Row
    return con


def _error_kind(exc: sqlite3.Error) -> str:
    """``"readonly"``, ``"busy"``, ``"full"`` or ``""`` for an SQLite error (its code name on Python >= 3.11,
    else its message)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc).lower()
    if name.startswith("SQLITE_READONLY") or name == "SQLITE_CANTOPEN" or (
            not name and ("readonly" in text or "read-only" in text or "unable to open" in text)):
        return "readonly"  # CANTOPEN here: the file exists and is readable, its -shm/-wal cannot be made
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or (not name and "locked" in text):
        return "busy"
    if name.startswith("SQLITE_FULL") or (not name and "full" in text):
        return "full"
    return ""


def storage_problem(exc: sqlite3.Error) -> str | None:
    """A one-line reason for an SQLite error that is the storage's fault, not the data's (None otherwise)."""
    return {"readonly": "the study database is read-only", "busy": "the study database is busy (locked by "
            "another process)", "full": "the disk holding the study is full"}.get(_error_kind(exc))


def create_database(study) -> sqlite3.Connection:
    """A new, empty study database in folder ``study`` (refused if one is there: answers may be in it)."""
    path = db_path(study)
    if path.exists():
        raise ConfigError(where(path, "a study database is already here; choose another --out (its answers "
                                      "would be lost)"))
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _connect(path)
    con.execute("PRAGMA journal_mode = WAL")
    con.executescript(SCHEMA)
    return con


def open_study(study, readonly: bool = False) -> sqlite3.Connection:
    """Open and check the study database of folder ``study``: a clear :class:`DataError` when it is
    missing, not SQLite, damaged, not a study of this version, or (``readonly`` False) read-only.

    ``readonly``: open with ``mode=ro``. In WAL mode even a reader needs the ``-shm`` file; where the folder
    is read-only and that file is absent, the study is opened ``immutable`` instead, which is safe only
    when no write-ahead log holds unmerged pages (refused otherwise: they would be silently skipped)."""
    path = db_path(study)
    if not path.is_file():
        raise DataError(where(path, "no study database here (make one with padis-study create)"))
    if not os.access(path, os.R_OK):
        raise DataError(where(path, "the study database is not readable (permission denied)"))
    try:
        try:
            return _checked(_connect_readonly(path) if readonly else _connect(path), path)
        except sqlite3.OperationalError as exc:
            if _error_kind(exc) != "readonly":
                raise
            if not readonly:
                raise DataError(where(Path(study), f"the study is read-only ({exc}); padis-study serve stores "
                                                   f"answers and needs the folder and {DB_NAME} writable "
                                                   f"(padis-study analyze works on a read-only study)")) from None
            wal = path.with_name(path.name + "-wal")
            if wal.exists() and wal.stat().st_size > 0:
                raise DataError(where(Path(study), f"the study is read-only ({exc}) and its write-ahead log "
                                                   f"{wal.name} holds answers not yet merged into {DB_NAME} (the "
                                                   f"server was stopped uncleanly); copy the folder somewhere "
                                                   f"writable and analyze the copy")) from None
            return _checked(_connect_readonly(path, immutable=True), path)
    except sqlite3.DatabaseError as exc:
        problem = storage_problem(exc)
        if problem is not None:
            raise DataError(where(path, f"{problem} ({exc})")) from None
        raise DataError(where(path, f"damaged or not a study database ({exc}); it was left untouched; "
                                    f"the answers are also in {ANSWER_LOG}")) from None


def _checked(con: sqlite3.Connection, path: Path) -> sqlite3.Connection:
    """``con`` once its file passed SQLite's quick check and holds a study of this version (closed if not)."""
    try:
        check = con.execute("PRAGMA quick_check").fetchone()[0]
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = None
        if TABLES <= tables:
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = row[0] if row else None
    except BaseException:
        con.close()
        raise
    if check != "ok":
        con.close()
        raise DataError(where(path, f"database integrity check failed ({check}); it was left untouched; "
                                    f"the answers are also in {ANSWER_LOG}"))
    if not TABLES <= tables or version is None:
        con.close()
        raise DataError(where(path, f"not a padis-study database (tables missing: "
                                    f"{', '.join(sorted(TABLES - tables)) or 'meta.schema_version'})"))
    if str(version) != str(SCHEMA_VERSION):
        con.close()
        raise DataError(where(path, f"study database version {version}; this padis-study reads version "
                                    f"{SCHEMA_VERSION}"))
    return con


def check_writable(con: sqlite3.Connection, study) -> None:
    """A :class:`DataError` naming folder ``study`` unless ``con`` can write (a probe row, rolled back): a
    read-only ``study.sqlite`` in a writable folder opens fine and fails only at the first answer."""
    try:
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute("INSERT INTO meta (key, value) VALUES ('write_probe', '0')")
        finally:
            con.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        problem = storage_problem(exc)
        if problem is None:
            raise
        if _error_kind(exc) == "readonly":
            problem = (f"the study is read-only ({exc}); padis-study serve stores answers and needs the folder "
                       f"and {DB_NAME} writable (padis-study analyze works on a read-only study)")
        raise DataError(where(Path(study), problem)) from None


@contextlib.contextmanager
def transaction(con: sqlite3.Connection, immediate: bool = True):
    """One committed transaction (``BEGIN IMMEDIATE``: writers queue instead of failing halfway)."""
    con.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def meta(con) -> dict:
    return {r["key"]: json.loads(r["value"]) for r in con.execute("SELECT key, value FROM meta")}


def n_cases(con) -> int:
    return con.execute("SELECT COUNT(*) FROM cases").fetchone()[0]


def check_int(value, name: str, lo: int, hi: int = MAX_INDEX) -> int:
    """``value`` if it is an int (not a bool) in ``lo..hi``, else a :class:`ConfigError` (the value is not
    echoed: it may have thousands of digits)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer")
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}")
    return value


def check_comment(comment) -> str:
    """``comment`` if it is text of at most :data:`MAX_COMMENT` characters that UTF-8 can store (no lone
    surrogates, which JSON's ``\\ud800`` escapes can produce) and holds no control characters but tab and
    newlines."""
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        raise ConfigError(f"comment must be text of at most {MAX_COMMENT} characters")
    try:
        comment.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError("comment must be valid Unicode text (it holds a lone surrogate)") from None
    if _CONTROL.search(comment):
        raise ConfigError("comment must not hold control characters (other than tab and newline)")
    return comment


# --------------------------------------------------------------------------------------------- readers
def check_reader_id(reader) -> str:
    """``reader`` if the whole string matches :data:`READER_ID` (nothing stripped: "r9\n" is refused)."""
    if not isinstance(reader, str) or not READER_ID.fullmatch(reader):
        raise ConfigError("reader id: 1-40 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return reader


def login(con, reader: str, takeover: bool = False, now: float | None = None) -> str:
    """A new session token for ``reader`` (ids are compared ignoring case: the first spelling stored is the
    reader's; :func:`reader_of` the token gives it). Refused (code ``in_use``) while another window holds an
    open session of the same id, unless ``takeover``: that window's session then ends (its next request is
    refused); answers are unaffected either way."""
    check_reader_id(reader)
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(24)
    with transaction(con):
        row = con.execute("SELECT reader, session, last_seen FROM readers WHERE reader = ?", (reader,)).fetchone()
        if row is None:  # ids differing only in case are one reader ("R1" logs in as the stored "r1")
            row = con.execute("SELECT reader, session, last_seen FROM readers WHERE reader = ? COLLATE NOCASE "
                              "ORDER BY created LIMIT 1", (reader,)).fetchone()
            reader = row["reader"] if row is not None else reader
        if row is None:
            con.execute("INSERT INTO readers (reader, session, last_seen, created) VALUES (?, ?, ?, ?)",
                        (reader, token, now, now))
            return token
        if row["session"] and row["last_seen"] and now - row["last_seen"] < ACTIVE_S and not takeover:
            raise SessionError(f"reader id '{reader}' is open in another window or browser", "in_use")
        con.execute("UPDATE readers SET session = ?, last_seen = ? WHERE reader = ?", (token, now, reader))
    return token


def reader_of(con, token, now: float | None = None) -> str:
    """The reader holding session ``token`` (and note it was heard from), else :class:`SessionError`."""
    if not isinstance(token, str) or not token:
        raise SessionError("no session: enter your reader id", "no_session")
    now = time.time() if now is None else now
    with transaction(con):
        row = con.execute("SELECT reader FROM readers WHERE session = ?", (token,)).fetchone()
        if row is None:
            raise SessionError("this session ended: the reader id was opened in another window", "ended")
        con.execute("UPDATE readers SET last_seen = ? WHERE reader = ?", (now, row["reader"]))
    return row["reader"]


def logout(con, token) -> None:
    with transaction(con):
        con.execute("UPDATE readers SET session = NULL WHERE session = ?", (token,))


def progress(con, reader: str) -> dict:
    """``{"done": answered, "n_cases": N, "next": first unanswered case number or None}``."""
    total = n_cases(con)
    done = con.execute("SELECT COUNT(*) FROM answers WHERE reader = ?", (reader,)).fetchone()[0]
    row = con.execute("SELECT MIN(case_no) FROM cases WHERE case_no NOT IN "
                      "(SELECT case_no FROM answers WHERE reader = ?)", (reader,)).fetchone()
    return {"done": done, "n_cases": total, "next": row[0]}


# ------------------------------------------------------------------------------------------- cases
def case_view(con, reader: str, case_no: int, now: float | None = None) -> dict:
    """What the page may know of case ``case_no`` (no labels, no sources); only the reader's next case."""
    check_int(case_no, "case", 1)
    nxt = progress(con, reader)["next"]
    if nxt is None:
        raise ConfigError("every case is answered")
    if case_no != nxt:
        raise ConfigError(f"case {case_no} is not your next case ({nxt})")
    row = con.execute("SELECT window_lo, window_hi FROM cases WHERE case_no = ?", (case_no,)).fetchone()
    k = con.execute("SELECT COUNT(*) FROM images WHERE case_no = ? AND position > 0", (case_no,)).fetchone()[0]
    with transaction(con):
        con.execute("INSERT OR IGNORE INTO views (reader, case_no, first_served) VALUES (?, ?, ?)",
                    (reader, case_no, time.time() if now is None else now))
    return {"case": case_no, "k": k, "window": [row["window_lo"], row["window_hi"]]}


def image(con, reader: str, case_no: int, position: int) -> bytes:
    """PNG of one image of the reader's current case (position 0: the reference)."""
    check_int(case_no, "case", 1)
    check_int(position, "image position", 0)
    if progress(con, reader)["next"] != case_no:
        raise ConfigError(f"case {case_no} is not your current case")
    row = con.execute("SELECT png FROM images WHERE case_no = ? AND position = ?", (case_no, position)).fetchone()
    if row is None:
        raise ConfigError(f"case {case_no} has no image {position}")
    return bytes(row["png"])


class AlreadyAnswered(ConfigError):
    """The reader has answered this case; the stored answer stands."""


def record_answer(con, study, reader: str, case_no: int, position, comment="", seconds=None,
                  now: float | None = None) -> dict:
    """Validate and store one answer (committed before returning) and append it to the answer log."""
    check_int(case_no, "case", 1)
    if isinstance(position, bool) or not isinstance(position, int):
        raise ConfigError("choice must be an integer")  # its range depends on the case: checked below
    check_comment(comment)
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= MAX_SECONDS:
            raise ConfigError("seconds must be a number between 0 and 86400")
        seconds = float(seconds)
    now = time.time() if now is None else now
    with transaction(con):
        if con.execute("SELECT 1 FROM answers WHERE reader = ? AND case_no = ?", (reader, case_no)).fetchone():
            raise AlreadyAnswered(f"case {case_no} is already answered; answers cannot be changed")
        k = con.execute("SELECT COUNT(*) FROM images WHERE case_no = ? AND position > 0", (case_no,)).fetchone()[0]
        if k == 0:
            raise ConfigError(f"no case {case_no}")
        if not 1 <= position <= k:
            raise ConfigError(f"choice must be between 1 and {k}")
        view = con.execute("SELECT first_served FROM views WHERE reader = ? AND case_no = ?",
                           (reader, case_no)).fetchone()
        if view is None:
            raise ConfigError(f"case {case_no} was not shown to you yet")
        row = {"reader": reader, "case_no": case_no, "position": position, "comment": comment.strip(),
               "seconds": seconds, "server_seconds": max(0.0, now - view["first_served"]), "answered_at": now}
        con.execute("INSERT INTO answers (reader, case_no, position, comment, seconds, server_seconds, answered_at)"
                    " VALUES (:reader, :case_no, :position, :comment, :seconds, :server_seconds, :answered_at)", row)
    _log_answer(Path(study) / ANSWER_LOG, row)
    return row


def _log_answer(path: Path, row: dict) -> None:
    """Append one line (flushed and fsynced); a failure here is reported but the database row stands."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        import warnings
        warnings.warn(f"{path}: could not append the answer copy ({exc}); the database has it")
