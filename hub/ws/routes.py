"""Plain HTTP GET endpoints served on the WebSocket port, through websockets' process_request."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from urllib.parse import parse_qs

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

__all__ = ["AdminGuard", "Routes", "is_upgrade", "json_response", "text_response"]

Route = Callable[[ServerConnection, Request], Response]


def is_upgrade(request: Request) -> bool:
    return "websocket" in request.headers.get("Upgrade", "").lower()


def text_response(
    status: int,
    body: str,
    content_type: str = "text/plain; charset=utf-8",
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> Response:
    return _response(status, body.encode(), content_type, extra_headers)


def json_response(status: int, body: bytes) -> Response:
    return _response(status, body, "application/json")


def _response(
    status: int, body: bytes, content_type: str, extra_headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    import http

    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
            *extra_headers,
        ]
    )
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


class AdminGuard:
    """Who may see the admin pages (the dashboard, /stats, /metrics) on the public port.

    With a token, a request must carry it (``Authorization: Bearer <token>``, or
    ``?admin_token=`` for a browser). Without one, the pages are open only when the hub
    listens on loopback: on any other address they answer 403 until a token is set.
    """

    def __init__(self, *, token: str | None, is_open: bool) -> None:
        self.token = token
        self.is_open = is_open

    def refusal(self, request: Request) -> Response | None:
        if self.token is None:
            if self.is_open:
                return None
            return text_response(
                403,
                "the admin pages are off on a non-loopback --host: set --admin-token "
                "(HUB_ADMIN_TOKEN) and send it as 'Authorization: Bearer <token>'\n",
            )
        scheme, _, given = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer":
            given = parse_qs(request.path.partition("?")[2]).get("admin_token", [""])[-1]
        if hmac.compare_digest(given.strip().encode(), self.token.encode()):
            return None
        return text_response(
            401, "the admin pages need the admin token: 'Authorization: Bearer <token>'\n"
        )


class Routes:
    """Path → handler for non-upgrade GET requests; admin routes pass the guard first."""

    def __init__(self, guard: AdminGuard | None = None) -> None:
        self._routes: dict[str, Route] = {}
        self._admin: set[str] = set()
        self.guard = guard

    def add(self, path: str, route: Route, *, admin: bool = False) -> None:
        self._routes[path] = route
        if admin:
            self._admin.add(path)

    def handle(self, connection: ServerConnection, request: Request) -> Response:
        path = request.path.split("?", 1)[0]
        route = self._routes.get(path)
        if route is None:
            return text_response(
                404,
                f"no such endpoint {path!r}; HTTP endpoints: {', '.join(sorted(self._routes))}; "
                "WebSocket clients connect to ws://HOST:PORT/<channel>\n",
            )
        if path in self._admin and self.guard is not None:
            refusal = self.guard.refusal(request)
            if refusal is not None:
                return refusal
        return route(connection, request)
