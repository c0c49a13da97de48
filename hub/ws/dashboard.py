"""The dashboard: a static page on a plain GET of ``/`` that polls ``GET /stats``; and the
browser client, ``/client.js``.

The page (``hub/static/``) has no build step and loads nothing from outside the hub. Its
"try it" panel joins a channel through ``/client.js`` on the same host and port.

``/client.js`` is public (ordinary users' browsers load it, from any origin: module scripts
are fetched with CORS), unlike the admin pages.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from hub.ws.routes import Route, Routes, json_response, text_response

__all__ = ["STATIC_FILES", "add_dashboard_routes"]

#: URL path → (file in hub/static, content type).
STATIC_FILES: dict[str, tuple[str, str]] = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/static/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    "/client.js": ("client.js", "text/javascript; charset=utf-8"),
}

#: Any page may import the client module.
_PUBLIC = (("Access-Control-Allow-Origin", "*"),)


def _static_route(text: str, content_type: str) -> Route:
    def route(connection: ServerConnection, request: Request) -> Response:
        return text_response(200, text, content_type, _PUBLIC)

    return route


def add_dashboard_routes(routes: Routes, *, stats: Callable[[], dict[str, Any]]) -> None:
    """Serve the page and its files (read once, here) and ``/stats`` from ``stats()``."""
    static = resources.files("hub") / "static"
    for path, (name, content_type) in STATIC_FILES.items():
        # The page itself is admin; its script and style hold no data.
        page = _static_route((static / name).read_text("utf-8"), content_type)
        routes.add(path, page, admin=path == "/")

    def stats_route(connection: ServerConnection, request: Request) -> Response:
        return json_response(200, orjson.dumps(stats()))

    routes.add("/stats", stats_route, admin=True)
