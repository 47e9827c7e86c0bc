"""What every console script shares: one-line argparse errors and the error -> exit-status mapping."""
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
