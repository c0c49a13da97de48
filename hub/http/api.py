"""The HTTP publish API: aiohttp on its own listener, in the worker's event loop.

WebSocket's HTTP parser refuses request bodies, hence a second listener. Everything it
publishes goes through ``Node.publish``, the same path as a WebSocket client's messages.

Two kinds of caller: a backend, with the API key (every endpoint), and a client, with the
same JWT that a WebSocket takes (``GET /sse/<channel>`` and ``POST /api/publish/<channel>``
only, each checked against the token's ``subscribe``/``publish`` claims as hub.v1 checks
them). Browsers reach both from other origins, so those two answer CORS, within
``--allowed-origins``.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from hub.core.auth import Authenticator, AuthError, Grant
from hub.core.channels import validate
from hub.core.envelope import BINARY, JSON, TEXT, Envelope
from hub.core.errors import BrokerUnavailable, CloseCode, InvalidChannel, ProtocolError
from hub.core.frames import history_frame
from hub.core.jsontext import NonFiniteNumber, parse_json
from hub.core.origins import normalize_origin
from hub.core.protocol import (
    BAD_CHANNEL,
    BAD_FIELD,
    BAD_JSON,
    BAD_REQUEST,
    DEFAULT_HISTORY_LIMIT,
    FORBIDDEN,
    HISTORY_OFF,
    MAX_HISTORY_LIMIT,
    MISSING_FIELD,
    PRESENCE_OFF,
    PUBLISH_REJECTED,
    UNAVAILABLE,
    UNRECOVERABLE_POSITION,
    message_from_body,
    message_from_fields,
    position_from,
)
from hub.hooks.proxy import HookProxy
from hub.http.guard import AuthThrottle, runner
from hub.http.sse import SseStreams, client_grant
from hub.node import Node
from hub.node.control import Replies

__all__ = ["PublishApi"]

logger = logging.getLogger(__name__)

#: Messages one batch publish may carry.
MAX_BATCH = 1000
#: The longest user the server API takes (a JWT ``sub``).
MAX_USER_LENGTH = 200
#: A WebSocket close reason is at most 123 bytes of UTF-8.
MAX_REASON_BYTES = 123

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    body = {"error": {"code": code, "message": message}, **extra}
    return web.json_response(body, status=status)


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
    ) -> None:
        self.node = node
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
        #: A short-lived redis-py asyncio client of the hubs' Redis (None: the memory broker).
        #: Every channel some process subscribes to in Redis, with their number.
        self.list_channels = list_channels
        self.runner: web.AppRunner | None = None
        #: Refused credentials per address: past a few, 429 (``hub.http.guard``).
        self.throttle = AuthThrottle()

    def build(self) -> web.Application:
        app = web.Application(
            client_max_size=self.max_message_bytes, middlewares=[self._middleware]
        )
        app.router.add_get("/sse/{channel:.+}", self.stream)
        app.router.add_route("OPTIONS", "/api/publish/{channel:.+}", self.preflight)
        app.router.add_post("/api/publish/{channel:.+}", self.publish_one)
        app.router.add_post("/api/publish", self.publish_batch)
        app.router.add_get("/api/channels", self.channels)
        app.router.add_get("/api/history/{channel:.+}", self.history)
        app.router.add_get("/api/presence/{channel:.+}", self.presence)
        app.router.add_delete("/api/history/{channel:.+}", self.delete_history)
        # The server API: acts on a user's connections on every instance.
        app.router.add_post("/api/disconnect", self.disconnect)
        app.router.add_post("/api/unsubscribe", self.unsubscribe)
        app.router.add_post("/api/subscribe", self.subscribe)
        app.router.add_get("/api/users/{user:.+}", self.user)
        app.router.add_get("/api/info", self.info)
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

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        is_client_route = request.match_info.route.handler in (
            self.stream,
            self.publish_one,
            self.preflight,
        )
        address = request.remote or "unknown"
        retry_after = self.throttle.retry_after(address)
        if retry_after is not None:
            if not is_client_route:
                response = _error(
                    429,
                    "too_many_failures",
                    f"too many refused credentials from {address}; retry after {retry_after} s",
                )
                response.headers["Retry-After"] = str(retry_after)
                return response
            request[_BLOCKED] = True  # a client token still verifies; the key is not taken
        if not is_client_route and not self._is_backend(request):
            response = _error(
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
            response = _error(401, "unauthorized", str(exc))
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
            response = _error(exc.status, _HTTP_CODES.get(exc.status, "http_error"), message)
        except ProtocolError as exc:
            response = _error(_STATUS_BY_CODE.get(exc.code, 400), exc.code, exc.message)
        if is_client_route and "Origin" in request.headers:
            # A browser script can read why it was refused; error bodies hold no secret.
            response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    def _publish(self, channel: str, message: Envelope) -> bool:
        return self.node.publish(channel, message.payload, message.kind)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """GET /sse/<channel>: the channel as Server-Sent Events (``hub.http.sse``)."""
        return await self.sse.stream(request, _channel(request.match_info["channel"]))

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
        channel = _channel(request.match_info["channel"])
        cors = self._cors_headers(request)
        self._client_grant(request, channel)
        body = await request.read()
        kind = _kind_of(request.content_type)
        if kind is None:
            return _error(
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
                channel = _channel(item["channel"])
                message = message_from_fields(item)
            except ProtocolError as exc:
                raise ProtocolError(exc.code, f"messages[{index}]: {exc.message}") from None
            batch.append((channel, message))
        for num_published, (channel, message) in enumerate(batch):
            if not self._publish(channel, message):
                return _rejected(num_published)
        return web.json_response({"published": len(batch)})

    async def history(self, request: web.Request) -> web.Response:
        """GET /api/history/<channel>?limit=50&since=EPOCH:OFFSET: the hub.v1 history answer."""
        channel = _channel(request.match_info["channel"])
        query = request.query
        try:
            limit = int(query.get("limit", DEFAULT_HISTORY_LIMIT))
        except ValueError:
            limit = -1
        if not 0 <= limit <= MAX_HISTORY_LIMIT:
            raise ProtocolError(
                BAD_FIELD, f"limit must be an integer from 0 to {MAX_HISTORY_LIMIT}"
            )
        since = None
        if "since" in query:
            epoch, _, offset = query["since"].rpartition(":")
            if not epoch or not offset.isdigit():
                raise ProtocolError(BAD_FIELD, "since must be EPOCH:OFFSET, e.g. since=a1b2c3d4:41")
            since = position_from({"epoch": epoch, "offset": int(offset)}, "since")
        page = await self.node.history.read(channel, since, limit)
        return web.Response(
            body=history_frame(b"null", channel, page), content_type="application/json"
        )

    async def presence(self, request: web.Request) -> web.Response:
        """GET /api/presence/<channel>: who is subscribed, as the hub.v1 presence answer."""
        channel = _channel(request.match_info["channel"])
        return web.json_response({"type": "presence", **await self.node.presence.read(channel)})

    async def delete_history(self, request: web.Request) -> web.Response:
        """DELETE /api/history/<channel>: the next publish starts a new epoch at offset 1."""
        channel = _channel(request.match_info["channel"])
        if not self.node.options_for(channel).has_history:
            raise ProtocolError(HISTORY_OFF, f"the channel {channel} keeps no history")
        try:
            existed = await self.node.broker.delete_history(channel)
        except BrokerUnavailable as exc:
            raise ProtocolError(UNAVAILABLE, f"{exc}; retry later") from None
        return web.json_response({"channel": channel, "deleted": existed})

    async def disconnect(self, request: web.Request) -> web.Response:
        """POST /api/disconnect {"user", "code"?, "reason"?}: close the user's connections."""
        body = await _json_object(request)
        user = _user(body)
        code = body.get("code", int(CloseCode.DISCONNECTED))
        if isinstance(code, bool) or not isinstance(code, int) or not 4000 <= code <= 4999:
            raise ProtocolError(BAD_FIELD, "code must be an integer from 4000 to 4999")
        reason = body.get("reason", "disconnected by the server")
        if not isinstance(reason, str) or len(reason.encode()) > MAX_REASON_BYTES:
            raise ProtocolError(
                BAD_FIELD, f"reason must be a string of at most {MAX_REASON_BYTES} bytes"
            )
        return _reached(user, await self.node.users.disconnect(user, code, reason))

    async def unsubscribe(self, request: web.Request) -> web.Response:
        """POST /api/unsubscribe {"user", "channel"}."""
        body = await _json_object(request)
        user, channel = _user(body), _body_channel(body)
        return _reached(user, await self.node.users.unsubscribe(user, channel))

    async def subscribe(self, request: web.Request) -> web.Response:
        """POST /api/subscribe {"user", "channel"}: a server-side subscription of the user's
        hub.v1 connections."""
        body = await _json_object(request)
        user, channel = _user(body), _body_channel(body)
        return _reached(user, await self.node.users.subscribe(user, channel))

    async def user(self, request: web.Request) -> web.Response:
        """GET /api/users/<user>: the user's connections, per instance, with their channels."""
        user = _user({"user": request.match_info["user"]})
        replies = await self.node.users.connections(user)
        return web.json_response(
            {
                "user": user,
                "count": replies.count(),
                "instances": [
                    {"instance": r["instance"], "connections": r.get("connections", [])}
                    for r in replies.replies
                ],
                "missing": replies.missing,
            }
        )

    async def info(self, request: web.Request) -> web.Response:
        """GET /api/info: every live instance, with its connections, users and channels."""
        replies = await self.node.users.info()
        instances = [
            {k: v for k, v in r.items() if k not in ("id", "error")} for r in replies.replies
        ]
        return web.json_response({"instances": instances, "missing": replies.missing})

    async def channels(self, request: web.Request) -> web.Response:
        local = dict(self.node.channels())
        if self.list_channels is None:
            rows = [
                {"channel": c, "subscribers": n, "processes": 1} for c, n in sorted(local.items())
            ]
            return web.json_response(
                {"channels": rows, "scope": "process", "note": "memory broker: this process only"}
            )
        try:
            remote = await self.list_channels()
        except Exception as exc:
            logger.warning("GET /api/channels: Redis is unreachable: %s", exc)
            return _error(503, "broker_unavailable", f"cannot ask Redis for channels: {exc}")
        rows = [
            {"channel": c, "processes": remote.get(c, 0), "local_subscribers": local.get(c, 0)}
            for c in sorted(remote.keys() | local.keys())
        ]
        return web.json_response(
            {
                "channels": rows,
                "scope": "cluster",
                "note": "processes: hub processes subscribed in Redis (PUBSUB NUMSUB); "
                "local_subscribers: clients of the worker that answered",
            }
        )


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


def _channel(name: str) -> str:
    try:
        return validate(name)
    except InvalidChannel as exc:
        raise ProtocolError(BAD_CHANNEL, str(exc)) from None


async def _json_object(request: web.Request) -> dict[str, object]:
    body = await request.read()
    try:
        obj = parse_json(body)
    except NonFiniteNumber as exc:
        raise ProtocolError(BAD_FIELD, str(exc)) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(BAD_JSON, f"the body is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(BAD_REQUEST, 'the body must be a JSON object, e.g. {"user": "alice"}')
    return obj


def _user(body: dict[str, object]) -> str:
    if "user" not in body:
        raise ProtocolError(MISSING_FIELD, "the body needs a 'user' (a JWT's sub)")
    user = body["user"]
    if not isinstance(user, str) or not 1 <= len(user) <= MAX_USER_LENGTH:
        raise ProtocolError(
            BAD_FIELD, f"user must be a string of 1 to {MAX_USER_LENGTH} characters"
        )
    return user


def _body_channel(body: dict[str, object]) -> str:
    if "channel" not in body:
        raise ProtocolError(MISSING_FIELD, "the body needs a 'channel'")
    channel = body["channel"]
    if not isinstance(channel, str):
        raise ProtocolError(BAD_CHANNEL, "channel must be a string")
    return _channel(channel)


def _reached(user: str, replies: Replies) -> web.Response:
    """A user command's answer: the connections it reached, on how many instances."""
    return web.json_response(
        {
            "user": user,
            "count": replies.count(),
            "instances": len(replies.replies),
            "missing": replies.missing,
        }
    )


def _rejected(num_published: int) -> web.Response:
    return _error(
        429,
        PUBLISH_REJECTED,
        "the broker's buffer is full (Redis unreachable); retry later",
        published=num_published,
    )
