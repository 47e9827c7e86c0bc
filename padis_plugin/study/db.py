"""The study database: one SQLite file (``study.sqlite``) holding the blinded cases, their images, the
unblinding key, the readers and their answers.

Only this module writes SQL. Every answer is committed in its own transaction before the reader is told it
was stored (WAL journal, ``synchronous=FULL``), so a killed server loses nothing; a second copy of each answer
goes to ``answers.jsonl`` beside the database (positions only, no key) for recovery should the file be damaged.
A damaged or foreign file is refused with a :class:`DataError`, never repaired or overwritten.
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
READER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
MAX_COMMENT = 2000
MAX_SECONDS = 24 * 3600.0

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
    missing, not SQLite, damaged, or not a study of this version."""
    path = db_path(study)
    if not path.is_file():
        raise DataError(where(path, "no study database here (make one with padis-study create)"))
    try:
        con = (sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0, check_same_thread=False)
               if readonly else _connect(path))
        con.row_factory = sqlite3.Row
        check = con.execute("PRAGMA quick_check").fetchone()[0]
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = None
        if TABLES <= tables:
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = row[0] if row else None
    except sqlite3.DatabaseError as exc:
        raise DataError(where(path, f"damaged or not a study database ({exc}); it was left untouched; "
                                    f"the answers are also in {ANSWER_LOG}")) from None
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


# --------------------------------------------------------------------------------------------- readers
def check_reader_id(reader) -> str:
    if not isinstance(reader, str) or not READER_ID.match(reader):
        raise ConfigError("reader id: 1-40 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return reader


def login(con, reader: str, takeover: bool = False, now: float | None = None) -> str:
    """A new session token for ``reader``. Refused (code ``in_use``) while another window holds an open
    session of the same id, unless ``takeover``: that window's session then ends (its next request is
    refused); answers are unaffected either way."""
    check_reader_id(reader)
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(24)
    with transaction(con):
        row = con.execute("SELECT session, last_seen FROM readers WHERE reader = ?", (reader,)).fetchone()
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
    if not isinstance(position, int) or isinstance(position, bool):
        raise ConfigError("choice must be an integer")
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        raise ConfigError(f"comment must be text of at most {MAX_COMMENT} characters")
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
