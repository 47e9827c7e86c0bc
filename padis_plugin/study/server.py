"""``serve``: the readers' web page and its JSON endpoints (Flask app, served by waitress, threaded).

The page learns only what a reader may see: case number, number of candidates, default window, and the
images by on-screen position. Labels, sources and other readers' answers are never served. Requests must
carry the reader's session token (header ``X-Session``; a cross-site form cannot set it), bodies are JSON and
validated here, the Host header must name this server when bound to localhost (no DNS rebinding), and every
answer is committed before the page is told it was stored.

Every bad request is a 4xx JSON answer naming the problem: numbers in paths and bodies are range-checked
before SQL (:func:`db.check_int`), bodies are strict UTF-8 JSON objects no deeper than :data:`MAX_BODY_DEPTH`
(checked on the raw bytes before parsing, which recurses), comments are text. A storage failure (read-only,
full or busy database) is a 503; anything else unexpected is logged with its traceback and answered with a
500 JSON that carries no detail.
"""
from __future__ import annotations

import json
import re
import sqlite3
import sys
from pathlib import Path

from flask import Flask, Response, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter

from ..errors import ConfigError, PadisError
from . import db

STATIC = Path(__file__).with_name("static")
LOCALHOST = ("127.0.0.1", "localhost", "::1")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# The page sends flat objects (depth 1). json.loads recurses once per level: 30,000 levels is a RecursionError.
MAX_BODY_DEPTH = 8
_JSON_STRUCTURE = re.compile(rb'["\\\[\]{}]')  # the only bytes that change string state or nesting depth


class IndexConverter(BaseConverter):
    """A case number or image position in a path: ASCII digits only (Werkzeug's ``int`` also takes other
    Unicode digits, and fails with 404 on more than 4300). A longer string than any index maps to
    ``db.MAX_INDEX + 1``, which the range check refuses with 400."""
    regex = r"[0-9]+"

    def to_python(self, value):
        return int(value) if len(value) <= 12 else db.MAX_INDEX + 1

    def to_url(self, value):
        return str(int(value))


def create_app(study, allowed_hosts=None) -> Flask:
    """The app for study folder ``study`` (checked now: a damaged database stops the server from starting).
    ``allowed_hosts``: accepted Host header names (None: any)."""
    study = Path(study)
    con = db.open_study(study)
    try:
        db.check_writable(con, study)  # a read-only study is refused now, not at the first answer
    finally:
        con.close()
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.url_map.converters["index"] = IndexConverter

    def connection():
        return db.open_study(study)

    @app.before_request
    def _check_request():
        if allowed_hosts is not None and request.host.rsplit(":", 1)[0].strip("[]") not in allowed_hosts:
            return _error("unknown host", 403)
        if request.method == "POST":
            if not request.is_json:
                return _error("send JSON (Content-Type: application/json)", 415)
            origin = request.headers.get("Origin")
            if origin is not None and origin.split("://", 1)[-1] != request.host:
                return _error("cross-origin request refused", 403)
        return None

    @app.after_request
    def _headers(resp: Response):
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.errorhandler(ConfigError)
    def _config_error(exc):
        if isinstance(exc, db.SessionError):
            return _error(str(exc), 409 if exc.code == "in_use" else 401, code=exc.code)
        if isinstance(exc, db.AlreadyAnswered):
            return _error(str(exc), 409, code="answered")
        return _error(str(exc), 400)

    @app.errorhandler(PadisError)
    def _study_error(exc):  # the database went bad while serving; its message names server paths: logged only
        app.logger.error("%s %s: %s", request.method, request.path, exc)
        return _error("the study database cannot be used now (see the server's log); nothing was stored", 503,
                      code="storage")

    @app.errorhandler(Exception)
    def _unexpected(exc):
        if isinstance(exc, HTTPException):  # those without a handler above (e.g. 400 from Werkzeug)
            return _error(exc.description or exc.name, exc.code) if (exc.code or 0) >= 400 else exc
        if isinstance(exc, sqlite3.Error) and db.storage_problem(exc) is not None:
            app.logger.error("%s %s: %s", request.method, request.path, exc)
            return _error(f"{db.storage_problem(exc)} (reload to see what was stored)", 503, code="storage")
        # last resort: every known bad input is a 4xx above; the traceback goes to the log, not the reply
        app.logger.exception("unexpected error on %s %s", request.method, request.path)
        return _error("internal error (logged by the server; reload to see what was stored)", 500,
                      code="internal")

    @app.errorhandler(404)
    def _not_found(exc):
        return _error("not found", 404)

    @app.errorhandler(405)
    def _bad_method(exc):
        return _error("method not allowed", 405)

    @app.errorhandler(413)
    def _too_large(exc):
        return _error("request too large", 413)

    @app.get("/")
    def index():
        return send_from_directory(STATIC, "index.html")

    @app.get("/favicon.ico")
    def favicon():
        return Response(status=204)

    @app.get("/static/<name>")
    def static_file(name):
        if name not in ("app.js", "app.css"):
            return _error("not found", 404)
        return send_from_directory(STATIC, name)

    @app.post("/api/login")
    def login():
        body = _body()
        con = connection()
        try:
            token = db.login(con, body.get("reader"), takeover=body.get("takeover") is True)
            return jsonify(token=token, **_state(con, db.reader_of(con, token)))  # the id as stored
        finally:
            con.close()

    @app.get("/api/state")
    def state():
        con = connection()
        try:
            return jsonify(**_state(con, _reader(con)))
        finally:
            con.close()

    @app.post("/api/ping")
    def ping():
        con = connection()
        try:
            _reader(con)
            return jsonify(ok=True)
        finally:
            con.close()

    @app.post("/api/logout")
    def logout():
        con = connection()
        try:
            db.logout(con, request.headers.get("X-Session", ""))
            return jsonify(ok=True)
        finally:
            con.close()

    @app.get("/api/case/<index:case_no>")
    def case(case_no):
        con = connection()
        try:
            reader = _reader(con)
            return jsonify(question=db.meta(con)["question"], **db.case_view(con, reader, case_no),
                           **_state(con, reader))
        finally:
            con.close()

    @app.get("/api/case/<index:case_no>/image/<index:position>")
    def image(case_no, position):
        con = connection()
        try:
            return Response(db.image(con, _reader(con), case_no, position), mimetype="image/png")
        finally:
            con.close()

    @app.post("/api/answer")
    def answer():
        body = _body()
        con = connection()
        try:
            reader = _reader(con)
            case_no = db.check_int(body.get("case"), "case", 1)
            db.record_answer(con, study, reader, case_no, body.get("choice"), body.get("comment", ""),
                             body.get("seconds"))
            return jsonify(stored=True, **_state(con, reader))
        finally:
            con.close()

    return app


def _error(message, status, code=None):
    resp = jsonify(error=message, code=code)
    resp.status_code = status
    return resp


def _body() -> dict:
    """The request's JSON object: UTF-8, at most :data:`MAX_BODY_DEPTH` deep, no duplicate keys, no NaN or
    Infinity (not JSON), integers of at most 4300 digits (Python's limit); else a :class:`ConfigError`."""
    data = request.get_data(cache=True)  # at most MAX_CONTENT_LENGTH bytes (413 beyond)
    if json_depth(data, MAX_BODY_DEPTH) > MAX_BODY_DEPTH:
        raise ConfigError(f"the request body nests deeper than {MAX_BODY_DEPTH} levels")
    try:
        body = json.loads(data.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except ConfigError:
        raise
    except UnicodeDecodeError:
        raise ConfigError("the request body is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:  # also an integer of more than 4300 digits
        raise ConfigError(f"the request body is not valid JSON ({str(exc).split(';')[0]})") from None
    if not isinstance(body, dict):
        raise ConfigError("the request body must be a JSON object")
    return body


def json_depth(data: bytes, stop: int | None = None) -> int:
    """Deepest nesting of ``[`` / ``{`` in JSON bytes ``data``, brackets inside strings not counted; one pass
    over the structural bytes only, no recursion. ``stop``: return as soon as the depth exceeds it. Invalid
    JSON gives some depth; the parser refuses it afterwards."""
    depth = deepest = 0
    in_string, escaped = False, -1
    for m in _JSON_STRUCTURE.finditer(data):
        i = m.start()
        if i == escaped:  # the byte after a backslash in a string
            continue
        c = data[i:i + 1]
        if in_string:
            if c == b"\\":
                escaped = i + 1
            elif c == b'"':
                in_string = False
        elif c == b'"':
            in_string = True
        elif c in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
            if stop is not None and depth > stop:
                break
        elif c in (b"]", b"}"):
            depth -= 1
    return deepest


def _unique_keys(pairs) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ConfigError("the request body repeats a key")
    return dict(pairs)


def _no_constant(name):
    raise ConfigError(f"the request body holds {name}, which is not JSON")


def _reader(con) -> str:
    return db.reader_of(con, request.headers.get("X-Session", ""))


def _state(con, reader) -> dict:
    return {"reader": reader, **db.progress(con, reader)}


def serve(study, host: str = "127.0.0.1", port: int = 8765, threads: int = 8) -> None:
    """Serve study folder ``study`` until interrupted (one server per study folder: a lock file)."""
    import signal
    import threading
    from waitress.server import create_server
    from ..atomic import FolderLock
    if threading.current_thread() is threading.main_thread():  # `kill` stops as cleanly as Ctrl-C (lock freed)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    allowed = LOCALHOST if host in LOCALHOST else None
    app = create_app(study, allowed_hosts=allowed)
    with FolderLock(study, "study folder"):
        server = create_server(app, host=host, port=port, threads=threads, ident="padis-study")
        shown = f"[{host}]" if ":" in host else host
        print(f"padis-study: serving {study} on http://{shown}:{server.effective_port}/ (Ctrl-C to stop)",
              flush=True)
        if host not in LOCALHOST:
            print("padis-study: warning: reachable from other machines; anyone who can reach this port can "
                  "answer as any reader id", file=sys.stderr, flush=True)
        try:
            server.run()
        finally:
            server.close()
