"""padis-study's command line: every subcommand option states its default, and the page ships as package data."""
from __future__ import annotations

import argparse
import configparser
from pathlib import Path

import pytest

from padis_plugin.cli.study import build_parser

SETUP_CFG = Path(__file__).resolve().parents[1] / "setup.cfg"


def _subparsers():
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


@pytest.mark.parametrize("command", ["create", "serve", "analyze"])
def test_every_subcommand_option_states_its_default(command):
    parser = _subparsers()[command]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.required or not action.option_strings:
            continue
        assert "default" in (action.help or "").lower(), f"{command} {action.option_strings}: {action.help!r}"


def test_the_page_is_package_data():
    server = pytest.importorskip("padis_plugin.study.server", reason="needs the study extra (flask)")
    for name in ("index.html", "app.js", "app.css"):
        assert (server.STATIC / name).is_file()
    html = (server.STATIC / "index.html").read_text()
    assert "http" not in html.replace('http-equiv', '')  # nothing loaded from elsewhere
    if SETUP_CFG.is_file():
        cfg = configparser.ConfigParser()
        cfg.read(SETUP_CFG)
        data = cfg["options.package_data"]["padis_plugin.study"]
        assert all(pattern in data for pattern in ("static/*.html", "static/*.js", "static/*.css"))


@pytest.mark.parametrize("missing", ["flask", "waitress"])
def test_serve_without_the_study_extra_names_it(tmp_path, monkeypatch, capsys, missing):
    import sys

    from padis_plugin.cli.study import main

    monkeypatch.setitem(sys.modules, missing, None)  # as if not installed
    monkeypatch.delitem(sys.modules, "padis_plugin.study.server", raising=False)
    assert main(["serve", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"needs {missing}" in err and "padis-plugin[study]" in err
