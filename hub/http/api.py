"""The HTTP publish API: aiohttp on its own listener, in the worker's event loop.

WebSocket's HTTP parser refuses request bodies, hence a second listener. Everything it
publishes goes through ``Node.publish``, the same path as a WebSocket client's messages.

Two kinds of caller: a backend, with the API key (every endpoint), and a client, with the
same JWT that a WebSocket takes (``GET /sse/<channel>`` and ``POST /api/publish/<channel>``
only, each checked against the token's ``subscribe``/``publish`` claims as hub.v1 checks
them). Browsers reach both from other origins, so those two answer CORS, within
``--allowed-origins``.

Here: the app, its routes, who the caller is, CORS, refusals' statuses, and publishing. The
reads are ``reads.py``; the server API's commands on users, ``commands.py``.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from hub.core.auth import Authenticator, AuthError, Grant
from hub.core.envelope import BINARY, JSON, TEXT, Envelope
from hub.core.errors import ProtocolError
from hub.core.jsontext import NonFiniteNumber, parse_json
from hub.core.origins import normalize_origin
from hub.core.protocol import (
    BAD_CHANNEL,
    BAD_FIELD,
    BAD_JSON,
    BAD_REQUEST,
    FORBIDDEN,
    HISTORY_OFF,
    PRESENCE_OFF,
    PUBLISH_REJECTED,
    UNAVAILABLE,
    UNRECOVERABLE_POSITION,
    message_from_body,
    message_from_fields,
)
from hub.hooks.proxy import HookProxy
from hub.http.commands import ServerApi
from hub.http.guard import AuthThrottle, runner
from hub.http.inputs import dashboard_origin, dashboard_preflight, error_answer, valid_channel
from hub.http.reads import Reads
from hub.http.sse import SseStreams, client_grant
from hub.node import Node

__all__ = ["PublishApi"]

logger = logging.getLogger(__name__)

#: Messages one batch publish may carry.
MAX_BATCH = 1000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_HTTP_CODES = {
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


#: Statuses of the refusals that are not a bad request.
_STATUS_BY_CODE = {
    FORBIDDEN: 403,
    HISTORY_OFF: 404,
    PRESENCE_OFF: 404,
    UNRECOVERABLE_POSITION: 410,
    UNAVAILABLE: 503,
}


class PublishApi:
    """``POST /api/publish/<channel>``, ``POST /api/publish``, ``GET /api/channels``."""

    def __init__(
        self,
        *,
        node: Node,
        api_key: str | None,
        max_message_bytes: int,
        list_channels: Callable[[], Awaitable[dict[str, int]]] | None = None,
        authenticator: Authenticator | None = None,
        allowed_origins: frozenset[str] | None = None,
        sse_keepalive_s: float = 15.0,
        max_buffered_bytes: int = 4 * 1024 * 1024,
        hooks: HookProxy | None = None,
        forwarded_headers: tuple[str, ...] = (),
        dashboard_port: int | None = None,
    ) -> None:
        self.node = node
        #: The hub's --port: its dashboard's origin may call the backend routes with the key.
        self.dashboard_port = dashboard_port
        self.api_key = api_key
        self.authenticator = authenticator
        self.allowed_origins = allowed_origins
        self.sse = SseStreams(
            node=node,
            authenticator=authenticator,
            keepalive_s=sse_keepalive_s,
            max_buffered_bytes=max_buffered_bytes,
            cors_headers=self._cors_headers,
            hooks=hooks,
            forwarded_headers=forwarded_headers,
        )
        self.max_message_bytes = max_message_bytes
        #: GET /api/history, /api/presence and /api/channels (``hub.http.reads``).
        self.reads = Reads(node, list_channels)
        #: The server API (``hub.http.commands``).
        self.server = ServerApi(node)
        self.runner: web.AppRunner | None = None
        #: Refused credentials per address: past a few, 429 (``hub.http.guard``).
        self.throttle = AuthThrottle()

    @property
    def list_channels(self) -> Callable[[], Awaitable[dict[str, int]]] | None:
        """What GET /api/channels asks Redis with (None: the memory broker)."""
        return self.reads.list_channels

    def build(self) -> web.Application:
        app = web.Application(
            client_max_size=self.max_message_bytes, middlewares=[self._middleware]
        )
        app.router.add_get("/sse/{channel:.+}", self.stream)
        app.router.add_route("OPTIONS", "/api/publish/{channel:.+}", self.preflight)
        app.router.add_post("/api/publish/{channel:.+}", self.publish_one)
        app.router.add_post("/api/publish", self.publish_batch)
        app.router.add_get("/api/channels", self.reads.channels)
        app.router.add_get("/api/history/{channel:.+}", self.reads.history)
        app.router.add_get("/api/presence/{channel:.+}", self.reads.presence)
        app.router.add_delete("/api/history/{channel:.+}", self.server.delete_history)
        # The server API: acts on a user's connections on every instance.
        app.router.add_post("/api/disconnect", self.server.disconnect)
        app.router.add_post("/api/unsubscribe", self.server.unsubscribe)
        app.router.add_post("/api/subscribe", self.server.subscribe)
        app.router.add_get("/api/users/{user:.+}", self.server.user)
        app.router.add_get("/api/info", self.server.info)
        # After the listener has stopped accepting: a reader that reconnects meanwhile gets
        # a refused connection, which EventSource retries, not an answer it gives up on.
        app.on_shutdown.append(self._end_streams)
        return app

    async def _end_streams(self, app: web.Application) -> None:
        await self.sse.close()

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        # A stream whose reader left must leave its channel at once, not at its next write.
        # No access log (a query may hold a token); malformed requests answered quietly.
        self.runner = runner(self.build(), access_log=None, handler_cancellation=True)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, reuse_port=reuse_port or None)
        await site.start()
        logger.info("HTTP publish API on http://%s:%d/api/", host, port)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def _is_backend(self, request: web.Request) -> bool:
        """The request carries the API key (or none is set and it carries no client token).
        From an address that the throttle blocks, no key is compared, so none is taken."""
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        is_bearer = scheme.lower() == "bearer"
        if self.api_key is None:
            return not (self.authenticator and (is_bearer or "token" in request.query))
        if request.get(_BLOCKED):
            return False
        return is_bearer and hmac.compare_digest(key.strip().encode(), self.api_key.encode())

    def _cors_headers(self, request: web.Request) -> dict[str, str]:
        """The CORS headers of a client endpoint's answer; 403 for an Origin not allowed."""
        origin = request.headers.get("Origin")
        if origin is None:
            return {}
        if self.allowed_origins is None:
            return {"Access-Control-Allow-Origin": "*"}
        if normalize_origin(origin) not in self.allowed_origins:
            raise ProtocolError(FORBIDDEN, f"the Origin {origin!r} is not in --allowed-origins")
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    def _dashboard_origin(self, request: web.Request) -> str | None:
        if self.dashboard_port is None or self.api_key is None:
            return None
        return dashboard_origin(request, self.dashboard_port)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        is_client_route = request.match_info.route.handler in (
            self.stream,
            self.publish_one,
            self.preflight,
        )
        dashboard = None if is_client_route else self._dashboard_origin(request)
        if dashboard is not None and request.method == "OPTIONS":
            # The dashboard's preflight (it carries no key): the actual request needs one.
            return web.Response(status=204, headers=dashboard_preflight(dashboard))
        response = await self._answer(request, handler, is_client_route)
        if dashboard is not None and self._is_backend(request):
            response.headers["Access-Control-Allow-Origin"] = dashboard
            response.headers["Vary"] = "Origin"
        return response

    async def _answer(
        self, request: web.Request, handler: Handler, is_client_route: bool
    ) -> web.StreamResponse:
        address = request.remote or "unknown"
        retry_after = self.throttle.retry_after(address)
        if retry_after is not None:
            if not is_client_route:
                response = error_answer(
                    429,
                    "too_many_failures",
                    f"too many refused credentials from {address}; retry after {retry_after} s",
                )
                response.headers["Retry-After"] = str(retry_after)
                return response
            request[_BLOCKED] = True  # a client token still verifies; the key is not taken
        if not is_client_route and not self._is_backend(request):
            response = error_answer(
                401,
                "unauthorized",
                "send 'Authorization: Bearer <key>' with the API key (a client token is "
                "taken only by GET /sse/<channel> and POST /api/publish/<channel>)",
            )
            response.headers["WWW-Authenticate"] = "Bearer"
            if _has_credential(request):
                self.throttle.refused(address, "a wrong API key")
            return response
        try:
            return await handler(request)
        except AuthError as exc:
            response = error_answer(401, "unauthorized", str(exc))
            response.headers["WWW-Authenticate"] = "Bearer"
            if _has_credential(request) and not _is_expiry(exc):
                self.throttle.refused(address, "an invalid key or token")
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            message = exc.text or exc.reason
            if exc.status == 413:
                message = (
                    f"the request body is over {self.max_message_bytes} bytes (--max-message-bytes)"
                )
            response = error_answer(exc.status, _HTTP_CODES.get(exc.status, "http_error"), message)
        except ProtocolError as exc:
            response = error_answer(_STATUS_BY_CODE.get(exc.code, 400), exc.code, exc.message)
        if is_client_route and "Origin" in request.headers:
            # A browser script can read why it was refused; error bodies hold no secret.
            response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    def _publish(self, channel: str, message: Envelope) -> bool:
        return self.node.publish(channel, message.payload, message.kind)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """GET /sse/<channel>: the channel as Server-Sent Events (``hub.http.sse``)."""
        return await self.sse.stream(request, valid_channel(request.match_info["channel"]))

    async def preflight(self, request: web.Request) -> web.Response:
        """A browser asks before POSTing JSON or an Authorization header cross-origin."""
        headers = self._cors_headers(request)
        headers.update(
            {
                "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": "Authorization, Content-Type",
                "Access-Control-Max-Age": "600",
            }
        )
        return web.Response(status=204, headers=headers)

    def _client_grant(self, request: web.Request, channel: str) -> Grant | None:
        """None for a backend; a client's grant, which must allow publishing here."""
        if self._is_backend(request):
            return None
        if self.authenticator is None:
            raise AuthError("send 'Authorization: Bearer <key>' with the API key")
        if self.node.options_for(channel).proxy_publish:
            raise ProtocolError(
                FORBIDDEN, f"publishes to {channel} go through the backend's hook: use hub.v1"
            )
        grant = client_grant(self.authenticator, request)
        if grant is not None and not grant.can_publish(channel):
            raise ProtocolError(FORBIDDEN, f"the token may not publish to {channel}")
        return grant

    async def publish_one(self, request: web.Request) -> web.Response:
        channel = valid_channel(request.match_info["channel"])
        cors = self._cors_headers(request)
        self._client_grant(request, channel)
        body = await request.read()
        kind = _kind_of(request.content_type)
        if kind is None:
            return error_answer(
                415,
                "unsupported_media_type",
                f"Content-Type {request.content_type!r}: use application/json (published as "
                "JSON), text/* (text) or application/octet-stream (binary)",
            )
        message = message_from_body(body, kind)
        if not self._publish(channel, message):
            return _rejected(0)
        return web.json_response({"published": 1, "channel": channel}, headers=cors)

    async def publish_batch(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            obj = parse_json(body, exact=True)
        except NonFiniteNumber as exc:
            raise ProtocolError(BAD_FIELD, str(exc)) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(BAD_JSON, f"the body is not valid JSON: {exc}") from None
        items = obj.get("messages") if isinstance(obj, dict) else None
        if not isinstance(items, list) or not items:
            raise ProtocolError(
                BAD_REQUEST,
                'the body must be {"messages": [{"channel": "name", "data": ...}, ...]}',
            )
        if len(items) > MAX_BATCH:
            raise ProtocolError(BAD_REQUEST, f"at most {MAX_BATCH} messages per batch")
        # Validate every message before publishing any, so a bad batch publishes nothing.
        batch: list[tuple[str, Envelope]] = []
        for index, item in enumerate(items):
            if not isinstance(item, dict) or "channel" not in item:
                raise ProtocolError(
                    BAD_REQUEST,
                    f"messages[{index}] must be an object with a 'channel'",
                )
            if not isinstance(item["channel"], str):
                raise ProtocolError(BAD_CHANNEL, f"messages[{index}].channel must be a string")
            try:
                channel = valid_channel(item["channel"])
                message = message_from_fields(item)
            except ProtocolError as exc:
                raise ProtocolError(exc.code, f"messages[{index}]: {exc.message}") from None
            batch.append((channel, message))
        for num_published, (channel, message) in enumerate(batch):
            if not self._publish(channel, message):
                return _rejected(num_published)
        return web.json_response({"published": len(batch)})


#: Set on a request from an address that the throttle blocks.
_BLOCKED: Final = "hub.blocked"


def _is_expiry(exc: AuthError) -> bool:
    """An expired token: a client's ordinary renewal, not a guess (it does not count)."""
    return str(exc).startswith("the token has expired")


def _has_credential(request: web.Request) -> bool:
    """The request presents a key or a token (a refusal of one counts toward 429)."""
    return "Authorization" in request.headers or "token" in request.query


def _kind_of(content_type: str) -> int | None:
    """The message kind of a request body by its Content-Type; None if unsupported."""
    if content_type == "application/json" or content_type.endswith("+json"):
        return JSON
    if content_type.startswith("text/"):
        return TEXT
    if content_type == "application/octet-stream":
        return BINARY
    return None


def _rejected(num_published: int) -> web.Response:
    return error_answer(
        429,
        PUBLISH_REJECTED,
        "the broker's buffer is full (Redis unreachable); retry later",
        published=num_published,
    )
