"""padis-study serve: the endpoints' validation, blinding, one vote per reader and case, sessions, a
damaged database, and answers surviving a server restart."""
from __future__ import annotations

import json
import sqlite3

import pytest
import requests

pytest.importorskip("flask", reason="the reader-study server needs the study extra (pip install -e '.[study]')")
pytest.importorskip("waitress", reason="the reader-study server needs the study extra (pip install -e '.[study]')")

from padis_plugin.errors import DataError
from padis_plugin.study import create, db
from padis_plugin.study.server import create_app
from study_fixtures import SOLVERS, make_bench, start_server, stop_server

HOST = {"Host": "127.0.0.1:8765"}


@pytest.fixture
def study(tmp_path):
    bench = make_bench(tmp_path / "bench")
    create.create_study([bench], [list(SOLVERS)], 3, tmp_path / "study", stratify=["contrast"])
    return tmp_path / "study"


@pytest.fixture
def client(study):
    app = create_app(study, allowed_hosts=("127.0.0.1", "localhost"))
    return app.test_client()


def _login(client, reader="r1", **extra):
    resp = client.post("/api/login", json={"reader": reader, **extra}, headers=HOST)
    return resp, (resp.get_json() or {}).get("token")


def _get(client, path, token):
    return client.get(path, headers={**HOST, "X-Session": token})


def _post(client, path, token, body):
    return client.post(path, json=body, headers={**HOST, "X-Session": token})


def test_a_reader_answers_in_order_once_per_case(client, study):
    resp, token = _login(client)
    assert resp.status_code == 200 and resp.get_json()["next"] == 1
    case = _get(client, "/api/case/1", token).get_json()
    assert case["k"] == 3 and case["n_cases"] == 3
    assert _get(client, "/api/case/2", token).status_code == 400  # only the reader's next case
    img = _get(client, "/api/case/1/image/0", token)
    assert img.mimetype == "image/png"
    ok = _post(client, "/api/answer", token, {"case": 1, "choice": 2, "comment": " looks sharp ", "seconds": 4.5})
    assert ok.status_code == 200 and ok.get_json()["next"] == 2
    again = _post(client, "/api/answer", token, {"case": 1, "choice": 3})
    assert again.status_code == 409 and again.get_json()["code"] == "answered"
    rows = sqlite3.connect(study / db.DB_NAME).execute("SELECT reader, case_no, position, comment, seconds "
                                                        "FROM answers").fetchall()
    assert rows == [("r1", 1, 2, "looks sharp", 4.5)]
    log = [json.loads(x) for x in (study / db.ANSWER_LOG).read_text().splitlines()]
    assert [(x["case_no"], x["position"]) for x in log] == [(1, 2)]


@pytest.mark.parametrize("body, message", [
    ({"case": 1, "choice": 4}, "between 1 and 3"),
    ({"case": 1, "choice": 0}, "between 1 and 3"),
    ({"case": 1, "choice": "2"}, "integer"),
    ({"case": 1, "choice": True}, "integer"),
    ({"case": "1", "choice": 1}, "integer"),
    ({"case": 1, "choice": 1, "comment": "x" * 2001}, "at most 2000"),
    ({"case": 1, "choice": 1, "seconds": -1}, "seconds"),
    ({"case": 2, "choice": 1}, "not shown to you"),
    ({"case": 99, "choice": 1}, "no case 99"),
])
def test_answers_are_validated_server_side(client, study, body, message):
    _, token = _login(client)
    _get(client, "/api/case/1", token)
    resp = _post(client, "/api/answer", token, body)
    assert resp.status_code == 400 and message in resp.get_json()["error"]
    assert sqlite3.connect(study / db.DB_NAME).execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 0


def test_requests_must_come_from_the_page(client):
    assert client.post("/api/login", json={"reader": "bad id!"}, headers=HOST).status_code == 400
    assert client.post("/api/login", data="reader=r1", headers=HOST).status_code == 415  # a plain form post
    assert client.post("/api/login", json={"reader": "r1"},
                       headers={**HOST, "Origin": "http://evil.example"}).status_code == 403
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 403  # DNS rebinding
    assert client.get("/api/case/1", headers=HOST).status_code == 401  # no session
    assert client.get("/static/../db.py", headers=HOST).status_code == 404


def test_the_key_is_never_served(client, study):
    _, token = _login(client)
    served = [client.get("/", headers=HOST).data, client.get("/static/app.js", headers=HOST).data]
    for case_no in (1, 2, 3):
        served.append(_get(client, f"/api/case/{case_no}", token).data)
        served += [_get(client, f"/api/case/{case_no}/image/{p}", token).data for p in range(4)]
        _post(client, "/api/answer", token, {"case": case_no, "choice": 1})
    served.append(_get(client, "/api/state", token).data)
    secrets = [lab.encode() for lab in SOLVERS] + [str(study).encode(), b"source", b"psnr", b"ssim"]
    assert not [s for s in secrets for body in served if s in body]


def test_two_windows_with_the_same_reader_id(client, study):
    _, first = _login(client, "r1")
    resp, _ = _login(client, "r1")
    assert resp.status_code == 409 and resp.get_json()["code"] == "in_use"
    _, second = _login(client, "r1", takeover=True)
    ended = _get(client, "/api/state", first)
    assert ended.status_code == 401 and ended.get_json()["code"] == "ended"
    _get(client, "/api/case/1", second)
    assert _post(client, "/api/answer", second, {"case": 1, "choice": 1}).status_code == 200
    assert _post(client, "/api/answer", first, {"case": 1, "choice": 2}).status_code == 401
    rows = sqlite3.connect(study / db.DB_NAME).execute("SELECT position FROM answers").fetchall()
    assert rows == [(1,)]


def test_a_damaged_database_is_refused_and_left_alone(study):
    path = study / db.DB_NAME
    data = bytearray(path.read_bytes())
    data[:16] = b"not a database!!"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="damaged or not a study database.*untouched"):
        create_app(study)
    assert path.read_bytes() == bytes(data)
    sqlite3.connect(study / "other.sqlite").execute("CREATE TABLE t (x)").connection.commit()
    (study / "other.sqlite").replace(path)
    with pytest.raises(DataError, match="not a padis-study database"):
        create_app(study)
    from padis_plugin.cli.study import main
    assert main(["analyze", str(study)]) == 2


def test_answers_survive_a_server_restart(study):
    proc, url = start_server(study)
    try:
        token = requests.post(f"{url}/api/login", json={"reader": "r1"}).json()["token"]
        h = {"X-Session": token}
        requests.get(f"{url}/api/case/1", headers=h)
        assert requests.post(f"{url}/api/answer", json={"case": 1, "choice": 3}, headers=h).ok
        with requests.Session() as s2:  # a second reader at the same time
            t2 = s2.post(f"{url}/api/login", json={"reader": "r2"}).json()["token"]
            s2.get(f"{url}/api/case/1", headers={"X-Session": t2})
            assert s2.post(f"{url}/api/answer", json={"case": 1, "choice": 1}, headers={"X-Session": t2}).ok
    finally:
        proc.kill()  # no clean shutdown
        proc.wait()
    proc, url = start_server(study)  # takes over the dead server's lock
    try:
        state = requests.get(f"{url}/api/state", headers=h).json()
        assert state["done"] == 1 and state["next"] == 2
    finally:
        stop_server(proc)
    assert not (study / ".padis.lock").exists()
