"""The dashboard page, its files, /stats and the public /client.js on the WebSocket port."""

from __future__ import annotations

import json
from importlib import resources
from typing import cast

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request

from hub.ws.dashboard import STATIC_FILES, add_dashboard_routes
from hub.ws.routes import AdminGuard, Routes

NO_CONNECTION = cast(ServerConnection, None)


def dashboard(guard: AdminGuard | None = None) -> Routes:
    routes = Routes(guard)
    add_dashboard_routes(routes, stats=lambda: {"connections": 3, "channels": ["a"]})
    return routes


def test_each_static_file_is_served_as_it_is_with_its_type() -> None:
    """Every path of STATIC_FILES answers 200 with the file of hub/static and its type."""
    routes = dashboard()
    static = resources.files("hub") / "static"
    for path, (name, content_type) in STATIC_FILES.items():
        response = routes.handle(NO_CONNECTION, Request(path, Headers()))
        assert response.status_code == 200, path
        assert response.body == (static / name).read_text("utf-8").encode()
        assert response.headers["Content-Type"] == content_type


def test_stats_is_the_json_of_stats() -> None:
    """/stats answers what the stats callable returns, as JSON, at each request."""
    response = dashboard().handle(NO_CONNECTION, Request("/stats", Headers()))
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.body) == {"connections": 3, "channels": ["a"]}


def test_the_page_and_stats_are_admin_and_its_files_are_public() -> None:
    """Behind a closed guard / and /stats answer 403; the scripts, style and client do not."""
    routes = dashboard(AdminGuard(token=None, is_open=False))
    codes = {
        p: routes.handle(NO_CONNECTION, Request(p, Headers())).status_code for p in STATIC_FILES
    }
    assert codes.pop("/") == 403 and set(codes.values()) == {200}
    assert routes.handle(NO_CONNECTION, Request("/stats", Headers())).status_code == 403


def test_client_js_may_be_imported_from_any_origin() -> None:
    """/client.js carries Access-Control-Allow-Origin: * (module scripts load with CORS)."""
    response = dashboard().handle(NO_CONNECTION, Request("/client.js", Headers()))
    assert response.headers["Access-Control-Allow-Origin"] == "*"
