"""Progress bars for long work: a tqdm bar with a total and a rate on a terminal; in a log (stderr not a
terminal) plain lines at most every ``log_interval`` seconds, with no carriage returns or cursor codes, and no
nested bars (a sampler's steps inside a benchmark item). Every console tool's ``--no-progress`` turns them off."""
from __future__ import annotations

import sys

from tqdm.auto import tqdm

#: Seconds between two progress lines in a log.
LOG_INTERVAL_S = 30.0


class _Lines:
    """A stream for tqdm that turns each redraw (``\\r`` + status) into one plain line."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").replace("\x1b[A", "").strip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def nested_bars_shown(stream=None) -> bool:
    """Whether a bar inside another long task is shown (on a terminal only): for libraries' own bars (deepinv's
    ``verbose``) that :func:`progress_bar` does not draw."""
    return _is_terminal(sys.stderr if stream is None else stream)


def progress_bar(iterable=None, *, total=None, desc=None, unit="it", enabled=True, nested=False, position=None,
                 initial=0, log_interval=LOG_INTERVAL_S, stream=None):
    """A tqdm bar over ``iterable`` (or of ``total`` steps, updated by the caller).

    :param bool enabled: False gives a disabled bar (``--no-progress``).
    :param bool nested: a bar inside another long task (a sampler's steps): shown on a terminal only.
    :param int position: line of the bar among several processes' bars (terminal only).
    """
    stream = sys.stderr if stream is None else stream
    terminal = _is_terminal(stream)
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if not enabled or (nested and not terminal):
        return tqdm(iterable, total=total, disable=True)
    if terminal:
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=not nested, position=position,
                    initial=initial, file=stream, dynamic_ncols=True)
    return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, file=_Lines(stream), ascii=True,
                ncols=100, mininterval=log_interval, maxinterval=log_interval)
