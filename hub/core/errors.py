"""The error tree and the close-code table.

Hierarchy::

    HubError
    ├── ConfigError          a setting has a bad value (names the key and the value)
    ├── InvalidChannel       a channel name breaks the naming rule
    ├── ProtocolError        a client request that is refused (carries a stable code)
    └── BrokerUnavailable    the broker cannot answer now (Redis unreachable); retry later
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "CLOSE_CODES",
    "BrokerUnavailable",
    "CloseCode",
    "CloseRule",
    "ConfigError",
    "HubError",
    "InvalidChannel",
    "ProtocolError",
    "close_codes_table",
    "redact_url",
]


class HubError(Exception):
    """Base class of every error that hub raises on purpose."""


class ConfigError(HubError):
    """A setting has a value that hub cannot use."""

    def __init__(self, key: str, value: object, reason: str) -> None:
        super().__init__(key, value, reason)
        self.key = key
        self.value = value
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.key}={self.value!r}: {self.reason}"


class InvalidChannel(HubError):
    """A channel name breaks the naming rule."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name, reason)
        self.name = name
        self.reason = reason

    def __str__(self) -> str:
        return f"invalid channel name {self.name[:80]!r}: {self.reason}"


class ProtocolError(HubError):
    """A client request that the server refuses; the connection stays open."""

    def __init__(self, code: str, message: str, request_id: object = None, **extra: object) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.request_id = request_id
        #: More fields of the error frame (``app_code`` of a hook's refusal).
        self.extra = extra

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class BrokerUnavailable(HubError, ConnectionError):
    """The broker cannot answer a request now (Redis unreachable); retry later."""


class CloseCode(enum.IntEnum):
    """WebSocket close codes that hub sends. Each one's reconnect rule is in CLOSE_CODES."""

    NORMAL = 1000
    GOING_AWAY = 1001
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013
    TOKEN_EXPIRED = 4001
    SLOW_CONSUMER = 4008
    DISCONNECTED = 4009


@dataclass(frozen=True)
class CloseRule:
    #: When hub sends the code.
    when: str
    #: Whether a client should reconnect, and how.
    should_reconnect: bool
    advice: str


CLOSE_CODES: dict[CloseCode, CloseRule] = {
    CloseCode.NORMAL: CloseRule("normal closure", False, "no"),
    CloseCode.GOING_AWAY: CloseRule(
        "the server is shutting down", True, "yes, after a short random delay"
    ),
    CloseCode.INVALID_DATA: CloseRule(
        "a text frame that is not valid UTF-8", True, "yes; send such data as a binary frame"
    ),
    CloseCode.POLICY_VIOLATION: CloseRule(
        "raw mode: the client may not publish here (its token only lets it read the channel), "
        "or it published over the rate limit",
        True,
        "yes, with backoff; publish slower, or with a token that allows it",
    ),
    CloseCode.MESSAGE_TOO_BIG: CloseRule(
        "a frame larger than `--max-message-bytes`", True, "yes; do not resend that frame"
    ),
    CloseCode.INTERNAL_ERROR: CloseRule("a server bug", True, "yes, with backoff"),
    CloseCode.TRY_AGAIN_LATER: CloseRule(
        "the server is overloaded, cannot reach Redis for a history read, or the backend's "
        "connect hook failed (down, slow past `--proxy-timeout-s`, or a bad answer)",
        True,
        "yes, with backoff",
    ),
    CloseCode.TOKEN_EXPIRED: CloseRule(
        "the JWT expired while connected (a timer fires at its `exp`), or the connect "
        "hook's `expire_at` passed and the refresh hook did not extend it",
        True,
        "fetch a fresh token, then reconnect",
    ),
    CloseCode.SLOW_CONSUMER: CloseRule(
        "slow consumer: unsent bytes passed `--max-buffered-bytes`",
        True,
        "yes; messages meanwhile were lost to it (recover them on history channels)",
    ),
    CloseCode.DISCONNECTED: CloseRule(
        "a backend disconnected this user (`POST /api/disconnect`), or unsubscribed this raw "
        "or SSE connection from its channel (`POST /api/unsubscribe`)",
        False,
        "no: the backend ended it on purpose; connect again only when the application decides",
    ),
}


def close_codes_table() -> str:
    """docs/protocol.md's table of close codes, generated from CLOSE_CODES."""
    rows = ["| code | when | reconnect? |", "|---|---|---|"]
    rows += [f"| {int(code)} | {rule.when} | {rule.advice} |" for code, rule in CLOSE_CODES.items()]
    return "\n".join(rows) + "\n"


def redact_url(url: str | None) -> str:
    """A broker URL fit to show: the password, if any, is replaced by ``***``."""
    if url is None:
        return "memory"
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
