"""Plain HTTP GET endpoints served on the WebSocket port, through websockets' process_request."""

from __future__ import annotations

from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

__all__ = ["Routes", "is_upgrade", "json_response", "text_response"]

Route = Callable[[ServerConnection, Request], Response]


def is_upgrade(request: Request) -> bool:
    return "websocket" in request.headers.get("Upgrade", "").lower()


def text_response(
    status: int, body: str, content_type: str = "text/plain; charset=utf-8"
) -> Response:
    return _response(status, body.encode(), content_type)


def json_response(status: int, body: bytes) -> Response:
    return _response(status, body, "application/json")


def _response(status: int, body: bytes, content_type: str) -> Response:
    import http

    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
        ]
    )
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


class Routes:
    """Path → handler for non-upgrade GET requests."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}

    def add(self, path: str, route: Route) -> None:
        self._routes[path] = route

    def handle(self, connection: ServerConnection, request: Request) -> Response:
        path = request.path.split("?", 1)[0]
        route = self._routes.get(path)
        if route is None:
            return text_response(
                404,
                f"no such endpoint {path!r}; HTTP endpoints: {', '.join(sorted(self._routes))}; "
                "WebSocket clients connect to ws://HOST:PORT/<channel>\n",
            )
        return route(connection, request)
