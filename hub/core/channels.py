"""Channel-name rules, and the mapping from a raw-mode URL path to a channel."""

from __future__ import annotations

import re

from hub.core.errors import InvalidChannel

__all__ = ["DEFAULT_CHANNEL", "MAX_CHANNEL_LENGTH", "RULE", "channel_from_path", "validate"]

DEFAULT_CHANNEL = "default"
MAX_CHANNEL_LENGTH = 200
RULE = (
    "a channel name is 1 to 200 characters from A-Z a-z 0-9 _ - . : / "
    "and does not start with '/' (for example: ws://host:8765/chat.room-1)"
)
_VALID = re.compile(r"[A-Za-z0-9_\-.:/]{1,200}\Z")


def validate(name: str) -> str:
    """Return ``name`` when it is a valid channel name, else raise InvalidChannel."""
    if _VALID.match(name) is None or name[0] == "/":
        if not name:
            reason = "it is empty"
        elif len(name) > MAX_CHANNEL_LENGTH:
            reason = f"it is {len(name)} characters long"
        elif name[0] == "/":
            reason = "it starts with '/'"
        else:
            bad = sorted({c for c in name if not re.match(r"[A-Za-z0-9_\-.:/]", c)})
            reason = f"it contains {''.join(bad)[:20]!r}"
        raise InvalidChannel(name, f"{reason}; {RULE}")
    return name


def channel_from_path(path: str) -> str:
    """The channel of a raw-mode request path: the path without its leading slash.

    The query string is ignored, and ``/`` is the channel ``default``.
    """
    path = path.split("?", 1)[0]
    name = path[1:] if path.startswith("/") else path
    return validate(name) if name else DEFAULT_CHANNEL
