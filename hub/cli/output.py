"""What the client commands print: counted nouns, and stdout that a reader may close early
(``hub check | head``) without a BrokenPipeError traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

__all__ = ["counted", "say"]


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """``1 hub process``, ``2 hub processes``, ``0 workers``."""
    if number == 1:
        return f"{number} {noun}"
    if plural is None:
        plural = noun + ("es" if noun.endswith(("s", "sh", "ch", "x")) else "s")
    return f"{number} {plural}"


def say(*lines: str | Iterable[str]) -> bool:
    """Print lines on stdout and flush them; False when the reader has gone (a closed
    pipe). Then stdout is pointed at /dev/null, so nothing later (the interpreter's own
    flush at exit included) raises or prints a traceback."""
    try:
        for item in lines:
            for line in [item] if isinstance(item, str) else item:
                print(line)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return False
    return True
