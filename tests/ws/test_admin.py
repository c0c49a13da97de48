"""The admin pages on the public port: open on loopback, guarded by --admin-token, and off
on any other address until a token is set. /healthz and /readyz stay open."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable

from support import HubProcess

TOKEN = "an-admin-token-for-the-tests"


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
    hub = start_hub("--workers", "1")
    assert [status(hub, p) for p in ("/", "/stats", "/metrics")] == [200, 200, 200]


def test_a_token_guards_the_admin_pages(start_hub: Callable[..., HubProcess]) -> None:
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
    hub = start_hub("--workers", "1", "--host", "0.0.0.0")
    assert status(hub, "/stats") == 403 and status(hub, "/metrics") == 403
    assert status(hub, "/healthz") == 200 and status(hub, "/readyz") == 200
