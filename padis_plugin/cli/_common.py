"""What every console script shares: one-line argparse errors, the error -> exit-status mapping (our errors
and failed writes: a folder that is read-only, a path that is a directory, a full disk), the output-file
overwrite check and the ``--config FILE|NAME`` / ``--list-configs`` options."""
from __future__ import annotations

import argparse
import re
import sys
import textwrap
from pathlib import Path
from typing import Callable

from ..errors import ConfigError, PadisError, where


# The paper the tools implement, for help texts that point at it.
PAPER = "PaDIS-MRI, Sanda et al., arXiv 2509.21531"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every tool's formatter: description and epilog (examples) keep their line breaks; option help is
    wrapped without breaking option names such as --raw-npy at their hyphens.

    Each option's help states its default itself, as ``(default: %(default)s)``, or in words where the bare
    value would say little (None)."""

    def _split_lines(self, text, width):
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def plain(text: str) -> str:
    """``text`` without reST markup, as argparse shows it: ``x`` and :role:`x` (or :role:`~a.b.x`) -> x."""
    text = re.sub(r":[a-z]+:`(~?)([^`]*)`", lambda m: m[2].rsplit(".", 1)[-1] if m[1] else m[2], text)
    return text.replace("``", "")


def doc_summary(doc: str) -> str:
    """A console script's description from its module docstring: the first paragraph (its line breaks kept),
    without the ``padis-x``: prefix and reST markup; first letter capitalised unless the word is a name
    such as fastMRI."""
    first = plain(doc.strip().split("\n\n", 1)[0])
    name, sep, rest = first.partition(": ")
    if sep and name.startswith("padis-") and " " not in name:
        first = rest
    first = "\n".join(line.strip() for line in first.splitlines())
    word = first.split(maxsplit=1)[0] if first.strip() else ""
    return first if word[1:] != word[1:].lower() else first[:1].upper() + first[1:]


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line ``error: <message>`` with exit status 2, like our data and config errors."""

    def error(self, message):
        self.exit(2, f"error: {message}\n")


def os_error_text(exc: OSError) -> str:
    """``<path>: <OS error>`` on one line (``[Errno N] ...`` when the error names no file)."""
    if exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror or exc}"
    else:
        text = str(exc)
    return " ".join(text.split())


def run_cli(fn: Callable[[], int], interrupted: str | None = None) -> int:
    """Run a console script's body: :class:`PadisError` -> ``error: <msg>`` on stderr, status 2; so is a
    failed read or write (:class:`OSError`, safetensors' I/O error): ``error: <path>: <OS error>``.

    With ``interrupted`` set, Ctrl-C prints it (``{reason}`` -> the interrupt's message, else ``interrupted``)
    and returns 130; without, :class:`KeyboardInterrupt` propagates.
    """
    try:
        return fn()
    except PadisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {os_error_text(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        if type(exc).__name__ != "SafetensorError":  # safetensors' errors carry no Python type to import cheaply
            raise
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        if interrupted is None:
            raise
        print(interrupted.format(reason=str(exc) or "interrupted"), file=sys.stderr)
        return 130


def check_output_file(path, overwrite: bool, option: str = "--out") -> Path | None:
    """Refuse an output file that exists (without ``overwrite``) or is a folder, before any slow work."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        raise ConfigError(where(path, f"{option} is a folder; give a file name"))
    if path.exists() and not overwrite:
        raise ConfigError(where(path, f"{option} exists; pass --overwrite to replace it"))
    return path


def add_config_options(parser: argparse.ArgumentParser, kind: str, example: str) -> None:
    """``--config`` (a YAML path, or the name of a shipped config) and ``--list-configs`` for ``kind`` configs."""
    parser.add_argument("--config", metavar="FILE|NAME",
                        help=f"{kind} config: a YAML file, or the name of a shipped one (e.g. {example}; "
                             "see --list-configs); no default: required unless a --list-... option is given")
    parser.add_argument("--list-configs", action="store_true",
                        help=f"print the shipped {kind} configs (name and description) and exit")


def config_listing(kind: str) -> str:
    """One line per shipped ``kind`` config: its name (what ``--config`` takes) and its header's first line."""
    from ..config import config_description, shipped_configs
    configs = shipped_configs(kind)
    width = max(map(len, configs), default=0)
    return "\n".join(f"{name:<{width}}  {config_description(path)}".rstrip() for name, path in configs.items())


def chosen_config(args, kind: str, other_lists: str = "") -> Path | None:
    """``--list-configs`` printed (returns None), or the resolved ``--config`` path; resolved before the heavy
    imports, so a mistyped name fails at once."""
    if args.list_configs:
        print(config_listing(kind))
        return None
    if not args.config:
        raise PadisError(f"give --config FILE.yaml or a shipped config's NAME (or --list-configs{other_lists})")
    from ..config import resolve_config
    return resolve_config(args.config)
