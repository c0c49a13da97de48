"""``hub bench``: a load tester for WebSocket broadcast servers (the hub, or any raw-mode server).

It is a side layer: it speaks the wire protocol and never imports the server side of hub. It is
installed as an extra, so a server's install carries none of what only it uses.
"""

from __future__ import annotations

__all__ = ["REQUIRES", "missing_requirement"]

#: The modules of the ``bench`` extra (pyproject.toml), by import name.
REQUIRES = ("picows", "rich", "hdrh", "psutil")


def missing_requirement() -> str | None:
    """The first module of the ``bench`` extra that cannot be imported, or None."""
    import importlib

    for name in REQUIRES:
        try:
            importlib.import_module(name)
        except ImportError:
            return name
    return None
