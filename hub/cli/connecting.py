"""Reaching a hub from the client commands (``hub listen``, ``hub publish``): the TLS context
of ``--ca-file``/``--insecure``, why a connect failed in words, and hub.client's connect
failures reported on stderr at WARNING, at most once per reason every few seconds.

hub.client retries on its own and logs each failed connect at DEBUG; :class:`ConnectLog`
reads those records (and passes hub.client's own warnings on), so the command can say what
is going on while it retries and why it gave up.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from hub.client.connection import tls_context as client_tls_context

__all__ = ["ConnectLog", "describe_failure", "reporting", "tls_context"]

#: A reason is said again after this many seconds, not at each retry.
REPEAT_EVERY_S: Final = 5.0

logger = logging.getLogger("hub.cli.connect")


def tls_context(ca_file: str | None, insecure: bool) -> ssl.SSLContext | None:
    """The client TLS context for wss:// and https://, as ``hub.client`` makes it (the
    system's CAs, plus ``ca_file``'s; or none checked with ``insecure``), with the error
    naming the flag. Raise ValueError for a CA file that does not load."""
    try:
        return client_tls_context(ca_file, insecure)
    except ValueError as exc:
        raise ValueError(f"--ca-file {ca_file}: cannot load it: {exc}") from None


def describe_failure(exc: BaseException) -> str:
    """Why a connect failed, in a few words: connection refused, a TLS failure and its cause,
    the HTTP status of a refused handshake, no answer in time."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS failure: {exc.verify_message} (use --ca-file FILE to trust its certificate)"
    if isinstance(exc, ssl.SSLError):
        hint = " (is it a plain ws:// or http:// port?)" if "WRONG_VERSION" in str(exc) else ""
        return f"TLS failure: {exc.reason or exc}{hint}"
    # websockets' InvalidStatus and InvalidMessage, known by their shape and name: only
    # hub.ws and hub.client import websockets.
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return f"HTTP {status} {getattr(response, 'reason_phrase', '')}".rstrip()
    if type(exc).__name__ == "InvalidMessage":
        # A TLS port drops a plain handshake unanswered; anything else answered, wrongly.
        cause = exc.__cause__
        if cause is None or isinstance(cause, EOFError | ConnectionError):
            return (
                "the connection closed without an answer to the handshake (a TLS port? use wss://)"
            )
        return f"not a WebSocket server's answer: {cause}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__


class ConnectLog(logging.Handler):
    """Takes hub.client's log records: a failed connect, a handshake answered with an HTTP
    status, a connection that closed, each becomes a WARNING of ``hub.cli.connect`` (once per
    reason every ``REPEAT_EVERY_S``); any other record of WARNING or above is passed on as
    it is. ``last`` is the latest reason, for the command's final word."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.last: str | None = None
        self._said: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        reason = _reason(record)
        if reason is None:
            if record.levelno >= logging.WARNING:
                logger.log(record.levelno, "%s", record.getMessage().removeprefix("hub.client: "))
            return
        self.last = reason
        now = time.monotonic()
        if now - self._said.get(reason, -REPEAT_EVERY_S) >= REPEAT_EVERY_S:
            self._said[reason] = now
            logger.warning("%s; retrying", reason)


def _reason(record: logging.LogRecord) -> str | None:
    failure = getattr(record, "hub_connect", None)
    if isinstance(failure, tuple) and len(failure) == 2:
        url, exc = failure
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(status, int):
            return f"{url} answered HTTP {status}"
        return f"cannot connect to {url}: {describe_failure(exc)}"
    args = record.args if isinstance(record.args, tuple) else ()
    url = next((a for a in args if isinstance(a, str)), "the hub")
    template = str(record.msg)
    if "connect" in template:
        exc = next((a for a in args if isinstance(a, BaseException)), None)
        if exc is not None:
            return f"cannot connect to {url}: {describe_failure(exc)}"
    number = next((a for a in args if isinstance(a, int)), None)
    if number is not None and "answered" in template:
        return f"{url} answered HTTP {number}"
    if number is not None and "closed" in template:
        return f"the connection to {url} closed ({number})"
    return None


@contextmanager
def reporting(command: str) -> Iterator[ConnectLog]:
    """While it lasts, hub.client's connect failures are said on stderr as
    ``hub COMMAND: cannot connect to URL: connection refused; retrying``."""
    client_logger = logging.getLogger("hub.client")
    stderr = logging.StreamHandler()
    stderr.setFormatter(logging.Formatter(f"hub {command}: %(message)s"))
    handler = ConnectLog()
    saved = client_logger.level, client_logger.propagate
    client_logger.setLevel(logging.DEBUG)
    client_logger.propagate = False
    client_logger.addHandler(handler)
    logger.addHandler(stderr)
    logger.propagate = False
    try:
        yield handler
    finally:
        client_logger.removeHandler(handler)
        client_logger.setLevel(saved[0])
        client_logger.propagate = saved[1]
        logger.removeHandler(stderr)
