"""padis-study serve under hostile input (issue 33, point 5): every bad request is a 4xx JSON answer that
stores nothing, never an HTML 500 -- huge integers (SQLite OverflowError), deep JSON (RecursionError), lone
surrogates, reader ids with a trailing newline -- and a read-only study is reported as read-only (serve) or
read without writing (analyze)."""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("flask", reason="the reader-study server needs the study extra (pip install -e '.[study]')")
pytest.importorskip("waitress", reason="the reader-study server needs the study extra (pip install -e '.[study]')")

from padis_plugin.errors import ConfigError, DataError
from padis_plugin.study import analyze, create, db, server
from padis_plugin.study.server import MAX_BODY_DEPTH, create_app, json_depth
from study_fixtures import REPO, SOLVERS, make_bench

HOST = {"Host": "127.0.0.1:8765"}
DEEP = 30_000


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A study of 3 cases x 3 methods, made once; each test works on a copy."""
    root = tmp_path_factory.mktemp("pristine")
    create.create_study([make_bench(root / "bench")], [list(SOLVERS)], 3, root / "study", stratify=["contrast"])
    return root / "study"


@pytest.fixture
def study(pristine, tmp_path):
    shutil.copytree(pristine, tmp_path / "study")
    return tmp_path / "study"


@pytest.fixture
def client(study):
    return create_app(study, allowed_hosts=("127.0.0.1", "localhost")).test_client()


def _token(client, reader="r1"):
    resp = client.post("/api/login", json={"reader": reader}, headers=HOST)
    assert resp.status_code == 200, resp.data
    return resp.get_json()["token"]


def _rows(study, table="answers"):
    return sqlite3.connect(study / db.DB_NAME).execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def _assert_json_error(resp, status, message):
    assert resp.status_code == status, resp.data[:300]
    assert resp.mimetype == "application/json"
    assert message in resp.get_json()["error"]
    assert b"Traceback" not in resp.data and b"<html" not in resp.data.lower()


# ------------------------------------------------------------------------------------------ answer bodies
def _raw(text: str) -> bytes:
    return text.encode("utf-8")


BAD_ANSWERS = [  # (what, raw request body, expected message); each was a 500 or a stored row before
    ("case 10^30 (SQLite OverflowError)", _raw('{"case": 1000000000000000000000000000000, "choice": 1}'),
     "case must be between 1 and 2147483647"),
    ("case -10^30", _raw('{"case": -1000000000000000000000000000000, "choice": 1}'), "case must be between 1"),
    ("case 2^63", _raw('{"case": 9223372036854775808, "choice": 1}'), "case must be between 1"),
    ("case 0", _raw('{"case": 0, "choice": 1}'), "case must be between 1"),
    ("choice 10^30", _raw('{"case": 1, "choice": 1000000000000000000000000000000}'), "choice must be between 1 and 3"),
    ("choice -10^30", _raw('{"case": 1, "choice": -1000000000000000000000000000000}'), "choice must be between 1 and 3"),
    ("seconds 10^400", _raw('{"case": 1, "choice": 1, "seconds": 1' + "0" * 400 + "}"), "seconds must be a number"),
    ("seconds 1e999 (inf)", _raw('{"case": 1, "choice": 1, "seconds": 1e999}'), "seconds must be a number"),
    ("seconds NaN", _raw('{"case": 1, "choice": 1, "seconds": NaN}'), "NaN, which is not JSON"),
    ("seconds -Infinity", _raw('{"case": 1, "choice": 1, "seconds": -Infinity}'), "-Infinity, which is not JSON"),
    ("case of 5000 digits", _raw('{"case": ' + "9" * 5000 + ', "choice": 1}'), "not valid JSON"),
    (f"array nested {DEEP} deep (RecursionError)",
     _raw('{"case": 1, "choice": 1, "x": ' + "[" * DEEP + "]" * DEEP + "}"), f"deeper than {MAX_BODY_DEPTH}"),
    ("object nested 12000 deep (under the 64 KiB body limit)", _raw('{"":' * 12_000 + "1" + "}" * 12_000),
     f"deeper than {MAX_BODY_DEPTH}"),
    (f"unclosed nesting {DEEP} deep", _raw("[" * DEEP), f"deeper than {MAX_BODY_DEPTH}"),
    ("nesting 9 deep", _raw('{"case": 1, "choice": 1, "x": ' + "[" * 8 + "]" * 8 + "}"), "deeper than 8"),
    ("lone high surrogate in comment", _raw('{"case": 1, "choice": 1, "comment": "ok \\ud800"}'), "lone surrogate"),
    ("lone low surrogate in comment", _raw('{"case": 1, "choice": 1, "comment": "\\udfff"}'), "lone surrogate"),
    ("NUL in comment", _raw('{"case": 1, "choice": 1, "comment": "a\\u0000b"}'), "control characters"),
    ("terminal escape in comment", _raw('{"case": 1, "choice": 1, "comment": "\\u001b[2J"}'), "control characters"),
    ("comment not text", _raw('{"case": 1, "choice": 1, "comment": ["x"]}'), "comment must be text"),
    ("body not UTF-8", b'{"case": 1, "choice": 1, "comment": "\xff\xfe"}', "not UTF-8"),
    ("duplicate key", _raw('{"case": 1, "choice": 1, "choice": 2}'), "repeats a key"),
    ("body an array", _raw("[1, 2]"), "must be a JSON object"),
    ("body truncated", _raw('{"case": 1, "choice"'), "not valid JSON"),
]


@pytest.mark.parametrize("body, message", [b[1:] for b in BAD_ANSWERS], ids=[b[0] for b in BAD_ANSWERS])
def test_a_bad_answer_is_400_and_stores_nothing(client, study, body, message):
    token = _token(client)
    assert client.get("/api/case/1", headers={**HOST, "X-Session": token}).status_code == 200
    resp = client.post("/api/answer", data=body, content_type="application/json", headers={**HOST, "X-Session": token})
    _assert_json_error(resp, 400, message)
    assert _rows(study) == 0 and not (study / db.ANSWER_LOG).exists()
    # the server still works: the same reader answers the same case
    ok = client.post("/api/answer", json={"case": 1, "choice": 2}, headers={**HOST, "X-Session": token})
    assert ok.status_code == 200 and _rows(study) == 1


@pytest.mark.parametrize("comment, stored", [
    ("[" * 1990 + '\\"{', "[" * 1990 + '\\"{'),  # brackets inside a string are not nesting
    (" line 1\nline 2\ttab, é, 中文, 😀 ", "line 1\nline 2\ttab, é, 中文, 😀"),
])
def test_text_comments_are_stored_exactly(client, study, comment, stored):
    token = _token(client)
    client.get("/api/case/1", headers={**HOST, "X-Session": token})
    resp = client.post("/api/answer", json={"case": 1, "choice": 3, "comment": comment},
                       headers={**HOST, "X-Session": token})
    assert resp.status_code == 200, resp.data
    assert sqlite3.connect(study / db.DB_NAME).execute("SELECT comment FROM answers").fetchall() == [(stored,)]
    assert json.loads((study / db.ANSWER_LOG).read_text())["comment"] == stored


# -------------------------------------------------------------------------------------------- URL numbers
BAD_PATHS = [  # (path, status, message)
    ("/api/case/" + "9" * 30, 400, "case must be between 1"),
    ("/api/case/9223372036854775808", 400, "case must be between 1"),
    ("/api/case/" + "9" * 5000, 400, "case must be between 1"),  # beyond int()'s 4300-digit limit
    ("/api/case/1/image/" + "9" * 30, 400, "image position must be between 0"),  # was an SQLite OverflowError
    ("/api/case/1/image/2147483648", 400, "image position must be between 0"),
    ("/api/case/" + "9" * 30 + "/image/0", 400, "case must be between 1"),
    ("/api/case/1/image/4", 400, "case 1 has no image 4"),
    ("/api/case/%D9%A1", 404, "not found"),  # an Arabic-Indic digit one is no case number
    ("/api/case/-1", 404, "not found"),
]


@pytest.mark.parametrize("path, status, message", BAD_PATHS, ids=[p[0][:40] for p in BAD_PATHS])
def test_numbers_in_paths_are_range_checked(client, path, status, message):
    token = _token(client)
    client.get("/api/case/1", headers={**HOST, "X-Session": token})
    _assert_json_error(client.get(path, headers={**HOST, "X-Session": token}), status, message)


# ---------------------------------------------------------------------------------------------- reader ids
BAD_READERS = ["r9\n", "r9\r\n", "r9\r", " r9", "r9 ", "r9\t", "r9\x00", "r9\u2028", "ｒ9", "r9\u0301", "",
               "x" * 41, "-r9", "r/9", 9, None, ["r9"]]


@pytest.mark.parametrize("reader", BAD_READERS, ids=[repr(r)[:20] for r in BAD_READERS])
def test_reader_ids_outside_the_pattern_are_refused_whole(client, study, reader):
    _assert_json_error(client.post("/api/login", json={"reader": reader}, headers=HOST), 400, "reader id")
    assert _rows(study, "readers") == 0
    with pytest.raises(ConfigError, match="reader id"):
        db.check_reader_id(reader)


def test_reader_ids_differing_in_case_are_one_reader(client, study):
    """"R1" after "r1" is the same person: one reader row, one vote per case."""
    first = _token(client, "r1")
    client.get("/api/case/1", headers={**HOST, "X-Session": first})
    assert client.post("/api/answer", json={"case": 1, "choice": 1},
                       headers={**HOST, "X-Session": first}).status_code == 200
    assert client.post("/api/logout", json={}, headers={**HOST, "X-Session": first}).status_code == 200
    resp = client.post("/api/login", json={"reader": "R1"}, headers=HOST)
    assert resp.status_code == 200 and resp.get_json()["reader"] == "r1" and resp.get_json()["next"] == 2
    assert _rows(study, "readers") == 1


# -------------------------------------------------------------------------------------------- depth scanner
@pytest.mark.parametrize("data, depth", [
    (b"", 0), (b"1", 0), (b"{}", 1), (b"[[]]", 2), (b'{"a": [{"b": []}]}', 4),
    (b'{"a": "[[[["}', 1), (b'{"a": "\\"[["}', 1), (b'{"a": "\\\\", "b": [[]]}', 3), (b'"[[["', 0),
    ("{\"é\": [\"中\"]}".encode(), 2),
])
def test_json_depth_counts_structure_outside_strings(data, depth):
    assert json_depth(data) == depth
    assert json_depth(data) == (json_depth_reference(json.loads(data)) if data else 0)


def json_depth_reference(obj) -> int:
    if isinstance(obj, dict):
        return 1 + max((json_depth_reference(v) for v in obj.values()), default=0)
    if isinstance(obj, list):
        return 1 + max((json_depth_reference(v) for v in obj), default=0)
    return 0


def test_json_depth_stops_early():
    assert json_depth(b"[" * 10 ** 6, stop=8) == 9


# ---------------------------------------------------------------------------------------- last resorts
def test_an_unexpected_error_is_a_500_json_without_detail(client, monkeypatch, caplog):
    token = _token(client)

    def broken(*a, **k):
        raise RuntimeError("secret detail /srv/study")

    monkeypatch.setattr(db, "progress", broken)
    with caplog.at_level("ERROR"):
        resp = client.get("/api/state", headers={**HOST, "X-Session": token})
    _assert_json_error(resp, 500, "internal error")
    assert resp.get_json()["code"] == "internal" and b"secret" not in resp.data
    assert "secret detail" in caplog.text  # logged with its traceback for the operator


@pytest.mark.parametrize("error, message", [
    (sqlite3.OperationalError("attempt to write a readonly database"), "read-only"),
    (sqlite3.OperationalError("database or disk is full"), "disk holding the study is full"),
    (sqlite3.OperationalError("database is locked"), "busy"),
    (DataError("/srv/study/study.sqlite: damaged or not a study database"), "cannot be used now"),
])
def test_a_storage_failure_while_serving_is_a_503(client, study, monkeypatch, error, message):
    token = _token(client)
    client.get("/api/case/1", headers={**HOST, "X-Session": token})

    def fail(*a, **k):
        raise error

    monkeypatch.setattr(db, "record_answer", fail)
    resp = client.post("/api/answer", json={"case": 1, "choice": 1}, headers={**HOST, "X-Session": token})
    _assert_json_error(resp, 503, message)
    assert b"/srv/study" not in resp.data and str(study).encode() not in resp.data
    assert _rows(study) == 0


# --------------------------------------------------------------------------------------- read-only study
def test_read_only_simulated_by_a_read_only_sqlite_uri(study, monkeypatch, tmp_path):
    """Simulation (works as root, where chmod does not stop writes): every connection the server opens is a
    ``mode=ro`` URI connection, so the write probe fails as on a read-only file."""
    answered = _answered(tmp_path)
    monkeypatch.setattr(db, "_connect", lambda path: db._connect_readonly(path))
    with pytest.raises(DataError, match=f"^{re.escape(str(study))}: the study is read-only .*analyze works") as info:
        create_app(study)
    assert "damaged" not in str(info.value)
    rep = analyze.write_report(answered, out=tmp_path / "report")
    assert rep["readers"] == ["r1"]


def test_read_only_simulated_without_a_shared_memory_file(study, monkeypatch, tmp_path):
    """Simulation of a read-only folder without ``study.sqlite-shm`` (SQLite cannot make it, so even
    ``mode=ro`` fails with "unable to open database file"): analyze falls back to ``immutable=1``, unless a
    write-ahead log holds unmerged answers, which that mode would skip."""
    answered = _answered(tmp_path)
    real = db._connect_readonly
    opened = []

    def cannot_make_shm(path, immutable=False):
        opened.append(immutable)
        if not immutable:
            raise sqlite3.OperationalError("unable to open database file")
        return real(path, immutable=True)

    monkeypatch.setattr(db, "_connect_readonly", cannot_make_shm)
    rep = analyze.write_report(answered, out=tmp_path / "report")
    assert rep["readers"] == ["r1"] and True in opened
    (answered / (db.DB_NAME + "-wal")).write_bytes(b"\0" * 32)
    with pytest.raises(DataError, match="read-only .*write-ahead log study.sqlite-wal holds answers"):
        analyze.write_report(answered, out=tmp_path / "report2")


def _answered(tmp_path):
    """A copy of the study with one answer by r1 (its WAL merged, as after a clean shutdown)."""
    folder = tmp_path / "answered"
    bench = make_bench(tmp_path / "bench2")
    create.create_study([bench], [list(SOLVERS)], 3, folder, stratify=["contrast"])
    con = db.open_study(folder)
    token = db.login(con, "r1")
    db.case_view(con, db.reader_of(con, token), 1)
    db.record_answer(con, folder, "r1", 1, 2)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return folder


_RUN_READ_ONLY = textwrap.dedent("""\
    import contextlib, io, json, sys
    from padis_plugin.cli.study import main
    out = {}
    for name, argv in (("serve", ["serve", sys.argv[1], "--port", "0"]),
                       ("analyze", ["analyze", sys.argv[1], "--out", sys.argv[2]])):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            out[name] = [main(argv), err.getvalue()]
    print(json.dumps(out))
""")


def _read_only_mount_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount --bind / /mnt && mount -o remount,ro,bind /mnt"],
                           capture_output=True)
    return probe.returncode == 0


def test_a_read_only_study_folder_for_real(tmp_path):
    """The folder truly read-only: chmod 555 as an ordinary user; as root (chmod stops no writes) a read-only
    bind mount in a private mount namespace (``unshare -m``: gone with the process), skipped without one."""
    study = _answered(tmp_path)
    root = os.geteuid() == 0
    if root and not _read_only_mount_works():
        pytest.skip("running as root (chmod does not stop writes) and no read-only bind mount is permitted")
    cmd = [sys.executable, "-c", _RUN_READ_ONLY, str(study), str(tmp_path / "report")]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    before = sorted(p.name for p in study.iterdir())
    if root:
        script = f'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"'
        cmd = ["unshare", "-m", "sh", "-c", script, "sh", str(study), *cmd]
    else:
        for p in study.iterdir():
            p.chmod(0o444)
        study.chmod(0o555)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    finally:
        study.chmod(0o755)
        for p in study.iterdir():
            p.chmod(0o644)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    rc, err = result["serve"]
    assert rc == 2 and err.startswith(f"error: {study}: the study is read-only") and "damaged" not in err
    assert len(err.strip().splitlines()) == 1
    rc, err = result["analyze"]
    assert rc == 0, err
    assert json.loads((tmp_path / "report" / "report.json").read_text())["readers"] == ["r1"]
    assert sorted(p.name for p in study.iterdir()) == before  # nothing made in the study folder


def test_random_requests_never_get_a_500(client):
    """120 seeded random bodies (odd values, some with a byte inserted) on every POST endpoint and random
    numbers in the GET paths: each answer is JSON (or the PNG asked for) with a status below 500."""
    rng = random.Random(0)
    values = [0, 1, 2, 3, -1, 10 ** 30, -10 ** 30, 2 ** 63, 1.5, 1e308, True, None, "", "1", "\ud800", "x" * 3000,
              [], {}, [[[]]], "r1", "R1", "r1\n", "\x00", "é"]
    keys = ["case", "choice", "comment", "seconds", "reader", "takeover", "x"]
    headers = {**HOST, "X-Session": _token(client)}
    for _ in range(120):
        body = {k: rng.choice(values) for k in rng.sample(keys, rng.randint(0, 5))}
        data = json.dumps(body, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
        if rng.random() < 0.2:
            at = rng.randrange(len(data) + 1)
            data = data[:at] + bytes([rng.randrange(256)]) + data[at:]
        endpoint = rng.choice(["/api/answer", "/api/login", "/api/ping", "/api/logout"])
        resp = client.post(endpoint, data=data, content_type="application/json", headers=headers)
        assert resp.status_code < 500 and resp.is_json, (endpoint, data[:80], resp.data[:200])
        if endpoint == "/api/login" and resp.status_code == 200:
            headers = {**HOST, "X-Session": resp.get_json()["token"]}
        path = rng.choice(["/api/case/", "/api/case/1/image/"]) + rng.choice(["0", "1", "3", "4", "9" * 20, "9" * 300])
        resp = client.get(path, headers=headers)
        assert resp.status_code < 500 and (resp.is_json or resp.mimetype == "image/png"), (path, resp.data[:200])
