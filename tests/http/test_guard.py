"""hub/http/guard.py: redaction, the throttle of refused credentials, and the aiohttp
internals that its guarded handler relies on (``AIOHTTP_INTERNALS``), on a live server."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web
from support import t

from hub.http.guard import AIOHTTP_INTERNALS, AuthThrottle, RedactingFilter, redact, runner


def test_redact_hides_tokens_keys_and_authorization() -> None:
    """Query tokens, bearer credentials and Authorization values; the rest is kept."""
    line = "GET /sse/a?x=1&token=eyJ.a.b&n=2 HTTP/1.1 Authorization: Bearer k3y"
    assert redact(line) == "GET /sse/a?x=1&token=<redacted>&n=2 HTTP/1.1 Authorization: <redacted>"
    assert redact("bearer abc, then") == "bearer <redacted>, then"
    assert redact("nothing secret") == "nothing secret"


def test_the_filter_redacts_messages_and_exceptions() -> None:
    record = logging.LogRecord(
        "aiohttp.server", logging.ERROR, "", 0, "line %s", ("?token=s",), None
    )
    try:
        raise ValueError("seen ?token=secret")
    except ValueError as exc:
        record.exc_info = (ValueError, exc, exc.__traceback__)
    assert RedactingFilter().filter(record)
    assert "secret" not in record.getMessage() and "secret" not in (record.exc_text or "")


def test_the_throttle_blocks_an_address_for_the_rest_of_its_window() -> None:
    """max_failures refusals are free; then retry_after until the window ends; another
    address is never affected; the tracked addresses stay under the cap."""
    now = [0.0]
    throttle = AuthThrottle(max_failures=3, window_s=10, max_addresses=4, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("a") is None
        throttle.refused("a", "a wrong API key")
    now[0] = 2.5
    assert throttle.retry_after("a") == 8 and throttle.retry_after("b") is None
    now[0] = 10.0
    assert throttle.retry_after("a") is None
    for n in range(100):
        throttle.refused(f"10.0.0.{n}", "a wrong API key")
    assert len(throttle._windows) <= 4


@pytest.mark.parametrize(
    "line", ["GET /\xff HTTP/1.1", "GET /a?token=s3cret&x=\xff HTTP/1.1", "\x16\x03"]
)
async def test_a_malformed_request_gets_400_with_the_reason_alone(
    line: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The guarded handler answers what aiohttp cannot parse: 400, no echo, no traceback."""
    app = web.Application()

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/", ok)
    served = runner(app, access_log=None)
    await served.setup()
    site = web.TCPSite(served, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        with caplog.at_level(logging.DEBUG):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"{line}\r\nHost: x\r\n\r\n".encode("latin-1"))
            async with asyncio.timeout(t(5)):
                answer = await reader.read()
            writer.close()
    finally:
        await served.cleanup()
    assert b" 400 " in answer.split(b"\r\n")[0], (AIOHTTP_INTERNALS, answer)
    assert b"s3cret" not in answer and b"\\xff" not in answer
    assert "Traceback" not in caplog.text and "s3cret" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info], AIOHTTP_INTERNALS
