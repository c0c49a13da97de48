"""Channel-name rules, personal channels, and the mapping from a raw-mode URL path to a channel.

A channel name is a base (``A-Z a-z 0-9 _ - . : /``, not starting with ``/``), optionally
followed by one ``#`` and a user: ``notifications#alice`` is alice's **personal channel**,
which only connections of that user may subscribe to (``hub.core.auth.may_subscribe``).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from hub.core.errors import InvalidChannel

__all__ = [
    "DEFAULT_CHANNEL",
    "MAX_CHANNEL_LENGTH",
    "RULE",
    "USER_RULE",
    "channel_from_path",
    "channel_user",
    "validate",
]

DEFAULT_CHANNEL = "default"
MAX_CHANNEL_LENGTH = 200
#: The characters of a personal channel's user: what JWT subs are made of (names, emails,
#: UUIDs, ``auth0|123``), and safe in Redis names (no glob character, no hash-tag brace), in
#: URL paths and in query strings, less ``#`` itself.
USER_CHARACTERS = r"A-Za-z0-9_\-.:@+=|"
USER_RULE = "its user is 1 or more characters from A-Z a-z 0-9 _ - . : @ + = |"
RULE = (
    "a channel name is 1 to 200 characters from A-Z a-z 0-9 _ - . : / "
    "and does not start with '/', optionally followed by '#' and a user for a personal "
    f"channel ({USER_RULE}) (for example: ws://host:8765/chat.room-1, notifications#alice)"
)
_BASE = r"[A-Za-z0-9_\-.:/]"
_VALID = re.compile(rf"{_BASE}+(?:#[{USER_CHARACTERS}]+)?\Z")
_BAD = re.compile(rf"[^{_BASE[1:-1]}#{USER_CHARACTERS}]")


def validate(name: str) -> str:
    """Return ``name`` when it is a valid channel name, else raise InvalidChannel."""
    if len(name) > MAX_CHANNEL_LENGTH or _VALID.match(name) is None or name[0] == "/":
        if not name:
            reason = "it is empty"
        elif len(name) > MAX_CHANNEL_LENGTH:
            reason = f"it is {len(name)} characters long"
        elif name[0] == "/":
            reason = "it starts with '/'"
        elif name.count("#") > 1:
            reason = "it has more than one '#'"
        elif name[0] == "#":
            reason = "it has nothing before its '#'"
        elif name.endswith("#"):
            reason = "it has no user after its '#'"
        else:
            base, _, user = name.partition("#")
            bad = {*re.findall(r"[^A-Za-z0-9_\-.:/]", base), *_BAD.findall(user)}
            reason = f"it contains {''.join(sorted(bad))[:20]!r}"
        raise InvalidChannel(name, f"{reason}; {RULE}")
    return name


def channel_user(channel: str) -> str | None:
    """The user of a personal channel (``notifications#alice`` → ``alice``), else None.
    ``channel`` is a valid name."""
    _, sep, user = channel.partition("#")
    return user if sep else None


def channel_from_path(path: str) -> str:
    """The channel of a raw-mode request path: the path without its leading slash,
    percent-decoded (a browser strips a ``#`` from a URL, so a personal channel is written
    ``/notifications%23alice``).

    The query string is ignored, and ``/`` is the channel ``default``.
    """
    path = path.split("?", 1)[0]
    name = path[1:] if path.startswith("/") else path
    if "%" in name and _ESCAPES.fullmatch(name):
        try:
            name = unquote(name, errors="strict")
        except UnicodeDecodeError:
            pass  # refused as it is, '%' and all
    return validate(name) if name else DEFAULT_CHANNEL


#: A path whose every ``%`` starts a well-formed escape (otherwise it is refused as it is).
_ESCAPES = re.compile(r"(?:[^%]|%[0-9A-Fa-f]{2})*")
