"""SIGTERM and SIGINT outside a worker's event loop.

Before the loop takes them over they end the process at once, with status 0 and no traceback.
Once the worker is stopping they are ignored: closing the loop would give them back their
default action, and so would the interpreter's exit for any Python-level handler, and a
process manager that repeats its SIGTERM during the rest of the exit would then kill a hub
that had drained cleanly (status -15). SIG_IGN is the one disposition the exit leaves alone;
the worker's shutdown deadline still bounds how long it takes."""

from __future__ import annotations

import asyncio
import signal
from types import FrameType

__all__ = [
    "exit_on_signals",
    "hold_signals",
    "ignore_once_stopping",
    "ignore_signals",
    "release_signals",
]

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def exit_on_signals() -> None:
    """From now on, SIGTERM or SIGINT ends this process with status 0."""
    for sig in _SIGNALS:
        signal.signal(sig, _exit_on_signal)


def hold_signals() -> None:
    """Keep SIGTERM and SIGINT pending while the event loop starts and takes them over.

    Raised from ``_exit_on_signal`` inside the loop's own set-up (uvloop's signal socketpair),
    SystemExit leaves the loop marked running, and the exit prints three tracebacks instead
    of stopping; held, the signal reaches the loop's handler once ``release_signals`` runs."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)


def release_signals() -> None:
    """Deliver what ``hold_signals`` kept pending: the loop's handlers are in place."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)


def ignore_signals() -> None:
    """From now on (the process has stopped and only exits), ignore SIGTERM and SIGINT."""
    for sig in _SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def ignore_once_stopping(loop: asyncio.AbstractEventLoop) -> None:
    """Take SIGTERM and SIGINT back from ``loop`` and ignore them for the rest of the exit.

    They are blocked meanwhile: one that arrives between the loop's removal (which restores
    the default action) and SIG_IGN waits, then is ignored, instead of killing the process."""
    hold_signals()
    try:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)
        ignore_signals()
    finally:
        release_signals()
