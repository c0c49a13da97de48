"""The HTTP API's defences against its callers: malformed requests answered without a
traceback, no token or key in any log line or error body, and wrong credentials throttled
per address.

aiohttp answers a request it cannot parse itself, before any middleware: its
``RequestHandler.handle_error`` logs the exception with its traceback and echoes the parser's
message, which quotes the request line (with any ``?token=``). ``runner`` gives aiohttp a
handler that answers such requests with the reason alone and logs one line at debug level;
a handler's own exception (a bug) keeps its traceback, redacted. Both rest on aiohttp internals
that ``AIOHTTP_INTERNALS`` names; tests/http/test_guard.py checks them on a live server.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

__all__ = [
    "AIOHTTP_INTERNALS",
    "AUTH_FAILURE_WINDOW_S",
    "MAX_AUTH_FAILURES",
    "MAX_TRACKED_ADDRESSES",
    "AuthThrottle",
    "RedactingFilter",
    "redact",
    "runner",
]

logger = logging.getLogger(__name__)

AIOHTTP_INTERNALS: Final = (
    "RequestHandler.handle_error(request, status, exc, message) answers a parse error",
    "Server.__call__ makes each connection's RequestHandler from Server._kwargs",
)

#: Refused credentials (401) one address may send within the window before it gets 429.
MAX_AUTH_FAILURES: Final = 20
#: The window, in seconds: also the longest Retry-After, and how often an address that
#: keeps failing is logged.
AUTH_FAILURE_WINDOW_S: Final = 10.0
#: Addresses tracked at once; past it, the oldest is forgotten (memory stays bounded).
MAX_TRACKED_ADDRESSES: Final = 10_000

_SECRETS: Final = re.compile(
    r"(?i)((?:[?&\s]|^)(?:token|api_key|key)=)[^&\s'\"]*|(bearer\s+)[^\s'\",]+"
    r"|(authorization:\s*)[^\r\n'\"]*"
)

#: aiohttp's loggers, whose lines ``RedactingFilter`` cleans.
AIOHTTP_LOGGERS: Final = ("aiohttp.server", "aiohttp.web", "aiohttp.access", "aiohttp.internal")


def redact(text: str) -> str:
    """``text`` with the values of ``token=`` (and ``key=``) query parameters, bearer
    credentials and ``Authorization`` headers replaced by ``<redacted>``."""
    return _SECRETS.sub(lambda m: (m.group(1) or m.group(2) or m.group(3)) + "<redacted>", text)


class RedactingFilter(logging.Filter):
    """Redacts every record that passes: its message, and the text of its exception."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def install_filters() -> None:
    """Attach one RedactingFilter to each of aiohttp's loggers (once)."""
    for name in AIOHTTP_LOGGERS:
        target = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in target.filters):
            target.addFilter(RedactingFilter())


def _reason(exc: HttpProcessingError) -> str:
    """The parser's reason without what it quotes of the request (``Invalid char in url``)."""
    first = str(exc.message).split("\n", 1)[0]
    return redact(re.split(r"[:'\"]", first, maxsplit=1)[0].strip())[:120] or "Bad Request"


class _GuardedHandler(RequestHandler):
    """aiohttp's RequestHandler, answering what it cannot parse with the reason alone."""

    __slots__ = ()

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, HttpProcessingError):
            reason = _reason(exc)
            logger.debug("HTTP API: a malformed request from %s: %s", request.remote, reason)
            response = web.Response(status=status, text=f"{status} Bad Request: {reason}\n")
            response.force_close()
            return response
        return super().handle_error(request, status, exc, message)


class _GuardedServer(web.Server):
    __slots__ = ()

    def __call__(self) -> RequestHandler:
        return _GuardedHandler(self, loop=self._loop, **self._kwargs)


class _GuardedRunner(web.AppRunner):
    __slots__ = ()

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _GuardedServer
        return server


def runner(app: web.Application, **kwargs: Any) -> web.AppRunner:
    """An AppRunner whose connections are guarded (see the module's docstring)."""
    install_filters()
    return _GuardedRunner(app, **kwargs)


class AuthThrottle:
    """Refused credentials per client address, in fixed windows of ``window_s``.

    An address may have ``max_failures`` refusals (401) in a window; past that it is
    *blocked* until the window ends: the API answers it 429 with Retry-After and checks no
    credential it sends, so guessing stops paying. Each address that fails is logged at most
    once per window, with the count of the window before. At most ``max_addresses`` are
    tracked; the oldest is dropped first.
    """

    def __init__(
        self,
        max_failures: int = MAX_AUTH_FAILURES,
        window_s: float = AUTH_FAILURE_WINDOW_S,
        max_addresses: int = MAX_TRACKED_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_addresses = max_addresses
        self.clock = clock
        #: address → [the window's start, refusals in it, refusals since the last log line]
        self._windows: dict[str, list[float]] = {}
        self.num_refused = 0
        self.num_blocked = 0

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may try again; None when it is not blocked."""
        window = self._windows.get(address)
        if window is None or window[1] < self.max_failures:
            return None
        left = window[0] + self.window_s - self.clock()
        if left <= 0:
            return None
        self.num_blocked += 1
        return max(1, math.ceil(left))

    def refused(self, address: str, why: str) -> None:
        """Count one refusal of ``address`` (``why`` names the credential, never holds it)."""
        self.num_refused += 1
        now = self.clock()
        window = self._windows.get(address)
        if window is None:
            if len(self._windows) >= self.max_addresses:
                del self._windows[next(iter(self._windows))]
            window = self._windows[address] = [now, 0, 0]
        elif now - window[0] >= self.window_s:
            window[0], window[1] = now, 0
        window[1] += 1
        window[2] += 1
        if window[1] == 1:
            logger.warning(
                "HTTP API: refused %s from %s (%d refused since the last such line; "
                "past %d in %g s the address gets 429)",
                why, address, window[2], self.max_failures, self.window_s,
            )  # fmt: skip
            window[2] = 0
        elif window[1] == self.max_failures:
            logger.warning(
                "HTTP API: %s sent %d refused credentials in %g s: answering 429 until "
                "the window ends", address, window[1], self.window_s,
            )  # fmt: skip
