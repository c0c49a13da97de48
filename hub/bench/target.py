"""Where and how each bench socket connects: its URL from ``--url`` and the channel, the
handshake headers (``--header``, ``--token``, ``--subprotocol``, ``--origin``) and TLS
(``wss://`` with the system trust store, ``--ca-file`` or ``--insecure``). Pure but for
loading certificates."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

__all__ = ["Handshake", "channel_url", "parse_header", "ssl_context", "with_default_path"]

PLACEHOLDERS = ("{channel}", "{i}")


def channel_url(base: str, channel: str, index: int) -> str:
    """The URL of socket ``index`` on ``channel``.

    ``{channel}`` and ``{i}`` in ``base`` are replaced (the channel URL-quoted). Without a
    placeholder, a URL with a path or query is kept exactly: every socket connects there. Only
    a bare ``ws://HOST:PORT`` (or ``ws://HOST:PORT/``) assumes hub's raw layout, the channel as
    the path.
    """
    if any(mark in base for mark in PLACEHOLDERS):
        return base.replace("{channel}", quote(channel, safe="")).replace("{i}", str(index))
    parts = urlsplit(base)
    if parts.path not in ("", "/") or parts.query:
        return base
    return f"{parts.scheme}://{parts.netloc}/{quote(channel, safe='')}"


def with_default_path(base: str, path: str) -> str:
    """``base`` with ``path`` (and query) when it is a bare ``ws://HOST:PORT``: the place a
    protocol's server listens by default (``/socket.io/?EIO=4&transport=websocket``)."""
    parts = urlsplit(base)
    if parts.path not in ("", "/") or parts.query or any(m in base for m in PLACEHOLDERS):
        return base
    return f"{parts.scheme}://{parts.netloc}{path}"


def parse_header(value: str) -> tuple[str, str]:
    """``'Name: value'`` as ``(name, value)``; ValueError says what is wrong."""
    name, sep, rest = value.partition(":")
    name = name.strip()
    if not sep or not name or any(c in name for c in " \t\r\n") or "\n" in rest or "\r" in rest:
        raise ValueError(f"--header {value!r}: expected 'Name: value'")
    return name, rest.strip()


@dataclass(frozen=True)
class Handshake:
    """What every upgrade request carries beyond the bare minimum. Picklable."""

    headers: tuple[tuple[str, str], ...] = ()
    ca_file: str | None = None
    insecure: bool = False

    @classmethod
    def build(
        cls,
        headers: list[str],
        token: str | None,
        subprotocol: str | None,
        origin: str | None,
        ca_file: str | None,
        insecure: bool,
    ) -> Handshake:
        pairs = [parse_header(h) for h in headers]
        if token:
            # hub reads 'Authorization: Bearer' first (docs/protocol.md); so do most servers.
            pairs.append(("Authorization", f"Bearer {token}"))
        if subprotocol:
            pairs.append(("Sec-WebSocket-Protocol", subprotocol))
        if origin:
            pairs.append(("Origin", origin))
        return cls(tuple(pairs), ca_file, insecure)

    def header_lines(self) -> bytes:
        """The headers as request lines, each ending in CRLF."""
        return "".join(f"{name}: {value}\r\n" for name, value in self.headers).encode("latin-1")


def ssl_context(handshake: Handshake) -> ssl.SSLContext:
    """The client TLS context: system trust store, plus ``--ca-file``; ``--insecure`` checks
    nothing (self-signed test servers)."""
    # The system's store and --ca-file's: create_default_context(cafile=...) would load only
    # the file, and so stop trusting public CAs.
    context = ssl.create_default_context()
    if handshake.ca_file:
        context.load_verify_locations(cafile=handshake.ca_file)
    if handshake.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
