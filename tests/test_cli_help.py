"""Every console tool's --help (issue 11): plain text a user can follow on their own.

No references to documents users do not have (numbered "spec" sections), no reST markup leaking from module docstrings,
every option states its default (or is a flag / a required option), and each epilog shows a real example
invocation. Only parsers are built: nothing heavy is imported.
"""
from __future__ import annotations

import argparse
import configparser
import importlib
import re
from pathlib import Path

import pytest

from padis_plugin.cli._common import doc_summary, plain

SETUP_CFG = Path(__file__).resolve().parents[1] / "setup.cfg"
TOOLS = {"padis-simulate": "padis_plugin.cli.simulate", "padis-prepare": "padis_plugin.cli.prepare",
         "padis-bench": "padis_plugin.cli.bench", "padis-train": "padis_plugin.cli.train",
         "padis-recon": "padis_plugin.cli.recon", "padis-study": "padis_plugin.cli.study",
         "padis-import": "padis_plugin.cli.import_published"}
FLAGS = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._StoreConstAction)


def _parser(tool: str) -> argparse.ArgumentParser:
    return importlib.import_module(TOOLS[tool]).build_parser()


def _help(tool: str) -> str:
    return _parser(tool).format_help()


def _label(action) -> str:
    return "/".join(action.option_strings) or action.dest


@pytest.mark.skipif(not SETUP_CFG.is_file(), reason="no setup.cfg (installed tests)")
def test_every_console_script_is_covered():
    cfg = configparser.ConfigParser()
    cfg.read(SETUP_CFG)
    scripts = {}
    for line in cfg["options.entry_points"]["console_scripts"].strip().splitlines():
        name, _, target = line.partition("=")
        scripts[name.strip()] = target.strip().split(":")[0]
    assert scripts == TOOLS


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_help_has_no_spec_references_or_rest_markup(tool):
    text = _help(tool)
    assert not re.search(r"\bspec\b", text, re.IGNORECASE), text
    for markup in ("``", ":class:", ":func:", ":mod:", ":meth:", ":attr:"):
        assert markup not in text, f"{tool} --help shows {markup!r}"
    assert not re.search(r":[a-z]+:`", text), text


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_description_is_plain_and_does_not_repeat_the_prog(tool):
    description = _parser(tool).description
    assert description and description.strip() == description
    assert not description.startswith(tool), description  # usage already names the tool


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_every_option_states_its_default(tool):
    parser = _parser(tool)
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        help_text = (action.help or "").strip()
        if not help_text:
            missing.append(f"{_label(action)}: no help")
            continue
        if isinstance(action, FLAGS) or action.required:
            continue
        if "default" not in help_text.lower():
            missing.append(f"{_label(action)}: {help_text!r} does not state its default")
    assert not missing, f"{tool}: " + "; ".join(missing)


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_epilog_shows_an_example_invocation(tool):
    epilog = _parser(tool).epilog or ""
    assert "Examples:" in epilog
    examples = re.findall(rf"^\s+{re.escape(tool)}(?:\s.*)?$", epilog, re.MULTILINE)
    assert examples, epilog
    assert any(len(line.split()) > 1 for line in examples), examples  # at least one with arguments
    assert epilog in _help(tool)  # shown as written (raw formatter): example lines keep their layout


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_help_exits_0_and_prints_the_epilog(tool, capsys):
    main = importlib.import_module(TOOLS[tool]).main
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {tool}")
    assert "Examples:" in out


def test_option_names_are_not_broken_at_hyphens():
    # simulate's SRC help ends in "--raw-npy": textwrap would split it as "--raw-" / "npy"
    for tool in TOOLS:
        assert not re.search(r"--[a-z]+-\n", _help(tool)), tool


def test_docstring_helpers_make_plain_text():
    assert plain("see :class:`~padis_plugin.data.PreparedSlice`, :func:`prepare` and ``--out``") \
        == "see PreparedSlice, prepare and --out"
    assert doc_summary('``padis-x``: real slices -> files.\n\nMore.') == "Real slices -> files."
    assert doc_summary("``padis-x``: fastMRI files\n    in, more.") == "fastMRI files\nin, more."
