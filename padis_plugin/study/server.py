"""``serve``: the readers' web page and its JSON endpoints (Flask app, served by waitress, threaded).

The page learns only what a reader may see: case number, number of candidates, default window, and the
images by on-screen position. Labels, sources and other readers' answers are never served. Requests must
carry the reader's session token (header ``X-Session``; a cross-site form cannot set it), bodies are JSON and
validated here, the Host header must name this server when bound to localhost (no DNS rebinding), and every
answer is committed before the page is told it was stored.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from flask import Flask, Response, jsonify, request, send_from_directory

from ..errors import ConfigError
from . import db

STATIC = Path(__file__).with_name("static")
LOCALHOST = ("127.0.0.1", "localhost", "::1")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def create_app(study, allowed_hosts=None) -> Flask:
    """The app for study folder ``study`` (checked now: a damaged database stops the server from starting).
    ``allowed_hosts``: accepted Host header names (None: any)."""
    study = Path(study)
    db.open_study(study).close()
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024

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
            return jsonify(token=token, **_state(con, body["reader"]))
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

    @app.get("/api/case/<int:case_no>")
    def case(case_no):
        con = connection()
        try:
            reader = _reader(con)
            return jsonify(question=db.meta(con)["question"], **db.case_view(con, reader, case_no),
                           **_state(con, reader))
        finally:
            con.close()

    @app.get("/api/case/<int:case_no>/image/<int:position>")
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
            case_no = body.get("case")
            if not isinstance(case_no, int) or isinstance(case_no, bool):
                raise ConfigError("case must be an integer")
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
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ConfigError("the request body must be a JSON object")
    return body


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
