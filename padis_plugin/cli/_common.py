"""What every console script shares: one-line argparse errors, the error -> exit-status mapping and the
``--config FILE|NAME`` / ``--list-configs`` options."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from ..errors import PadisError


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line ``error: <message>`` with exit status 2, like our data and config errors."""

    def error(self, message):
        self.exit(2, f"error: {message}\n")


def run_cli(fn: Callable[[], int], interrupted: str | None = None) -> int:
    """Run a console script's body: :class:`PadisError` -> ``error: <msg>`` on stderr, status 2.

    With ``interrupted`` set, Ctrl-C prints it (``{reason}`` -> the interrupt's message, else ``interrupted``)
    and returns 130; without, :class:`KeyboardInterrupt` propagates.
    """
    try:
        return fn()
    except PadisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        if interrupted is None:
            raise
        print(interrupted.format(reason=str(exc) or "interrupted"), file=sys.stderr)
        return 130


def add_config_options(parser: argparse.ArgumentParser, kind: str, example: str) -> None:
    """``--config`` (a YAML path, or the name of a shipped config) and ``--list-configs`` for ``kind`` configs."""
    parser.add_argument("--config", metavar="FILE|NAME",
                        help=f"{kind} config: a YAML file, or the name of a shipped one (e.g. {example}; "
                             "see --list-configs)")
    parser.add_argument("--list-configs", action="store_true",
                        help=f"print the shipped {kind} configs (name and description) and exit")


def config_listing(kind: str) -> str:
    """One line per shipped ``kind`` config: its name (what ``--config`` takes) and its header's first line."""
    from ..config import config_description, shipped_configs
    configs = shipped_configs(kind)
    width = max(map(len, configs), default=0)
    return "\n".join(f"{name:<{width}}  {config_description(path)}".rstrip() for name, path in configs.items())
