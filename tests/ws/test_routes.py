"""The plain HTTP GET endpoints of the WebSocket port, and the admin guard in front of some."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from typing import cast

from support import HubProcess
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from hub.ws.routes import AdminGuard, Routes, is_upgrade, json_response, text_response

TOKEN = "an-admin-token-for-the-tests"
#: The routes here never look at the connection.
NO_CONNECTION = cast(ServerConnection, None)


def get(path: str, **headers: str) -> Request:
    return Request(path, Headers(headers))


def ok(connection: ServerConnection, request: Request) -> Response:
    return text_response(200, "ok\n")


def routes(guard: AdminGuard | None) -> Routes:
    r = Routes(guard)
    r.add("/open", ok)
    r.add("/admin", ok, admin=True)
    return r


def test_an_unknown_path_is_404_listing_the_endpoints() -> None:
    """The 404 names the path asked for and every endpoint there is."""
    response = routes(None).handle(NO_CONNECTION, get("/nope?x=1"))
    assert response.status_code == 404
    assert b"'/nope'" in response.body and b"/admin, /open" in response.body


def test_the_query_string_is_not_part_of_the_path() -> None:
    """/open?x=1 is /open."""
    assert routes(None).handle(NO_CONNECTION, get("/open?x=1")).status_code == 200


def test_the_guard_checks_a_bearer_token_or_the_admin_token_parameter() -> None:
    """Admin routes need the token, in the header or ?admin_token=; others never do."""
    r = routes(AdminGuard(token=TOKEN, is_open=True))
    assert r.handle(NO_CONNECTION, get("/admin")).status_code == 401
    assert r.handle(NO_CONNECTION, get("/admin", Authorization="Bearer wrong")).status_code == 401
    assert (
        r.handle(NO_CONNECTION, get("/admin", Authorization=f"Bearer {TOKEN}")).status_code == 200
    )
    assert r.handle(NO_CONNECTION, get(f"/admin?admin_token={TOKEN}")).status_code == 200
    assert r.handle(NO_CONNECTION, get("/open")).status_code == 200


def test_without_a_token_admin_routes_are_open_only_on_loopback() -> None:
    """No token: 200 when the guard is open (loopback), 403 saying what to set otherwise."""
    assert (
        routes(AdminGuard(token=None, is_open=True))
        .handle(NO_CONNECTION, get("/admin"))
        .status_code
        == 200
    )
    closed = routes(AdminGuard(token=None, is_open=False)).handle(NO_CONNECTION, get("/admin"))
    assert closed.status_code == 403 and b"--admin-token" in closed.body


def test_responses_are_uncached_and_close_the_connection() -> None:
    """Every response has its type, its length, no-store and Connection: close."""
    response = json_response(200, b'{"a":1}')
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Content-Length"] == "7"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Connection"] == "close"
    assert text_response(418, "x").reason_phrase == "I'm a Teapot"


def test_is_upgrade_reads_the_upgrade_header() -> None:
    """A request with Upgrade: websocket (any case) is an upgrade; others are plain GETs."""
    assert is_upgrade(get("/", Upgrade="WebSocket"))
    assert not is_upgrade(get("/"))


def status(hub: HubProcess, path: str, token: str | None = None) -> int:
    request = urllib.request.Request(hub.base_url + path)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_loopback_without_a_token_is_open(start_hub: Callable[..., HubProcess]) -> None:
    """On loopback with no token the dashboard, /stats and /metrics answer 200."""
    hub = start_hub("--workers", "1")
    assert [status(hub, p) for p in ("/", "/stats", "/metrics")] == [200, 200, 200]


def test_a_token_guards_the_admin_pages(start_hub: Callable[..., HubProcess]) -> None:
    """With --admin-token the admin pages need it; /healthz, /readyz and the files stay open."""
    hub = start_hub("--workers", "1", "--admin-token", TOKEN)
    for path in ("/", "/stats", "/metrics"):
        assert status(hub, path) == 401
        assert status(hub, path, "wrong") == 401
        assert status(hub, path, TOKEN) == 200
    assert status(hub, f"/?admin_token={TOKEN}") == 200  # a browser opening the dashboard
    assert status(hub, "/static/dashboard.js") == 200
    assert status(hub, "/healthz") == 200 and status(hub, "/readyz") == 200


def test_a_public_bind_without_a_token_closes_the_admin_pages(
    start_hub: Callable[..., HubProcess],
) -> None:
    """On 0.0.0.0 with no token the admin pages answer 403; health stays open."""
    hub = start_hub("--workers", "1", "--host", "0.0.0.0")
    assert status(hub, "/stats") == 403 and status(hub, "/metrics") == 403
    assert status(hub, "/healthz") == 200 and status(hub, "/readyz") == 200
