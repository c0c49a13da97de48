"""The server API, for a backend: commands on a user's connections on every instance
(``POST /api/disconnect``, ``/api/subscribe``, ``/api/unsubscribe``), what is connected
(``GET /api/users/<user>``, ``GET /api/info``), and ``DELETE /api/history/<channel>``."""

from __future__ import annotations

from aiohttp import web

from hub.core.errors import BrokerUnavailable, CloseCode, ProtocolError
from hub.core.protocol import BAD_CHANNEL, BAD_FIELD, HISTORY_OFF, MISSING_FIELD, UNAVAILABLE
from hub.http.inputs import json_object, valid_channel
from hub.node import Node
from hub.node.control import Replies

__all__ = ["MAX_REASON_BYTES", "MAX_USER_LENGTH", "ServerApi"]

#: The longest user the server API takes (a JWT ``sub``).
MAX_USER_LENGTH = 200
#: A WebSocket close reason is at most 123 bytes of UTF-8.
MAX_REASON_BYTES = 123


class ServerApi:
    """The server API's handlers; ``PublishApi`` routes to them."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def delete_history(self, request: web.Request) -> web.Response:
        """DELETE /api/history/<channel>: the next publish starts a new epoch at offset 1."""
        channel = valid_channel(request.match_info["channel"])
        if not self.node.options_for(channel).has_history:
            raise ProtocolError(HISTORY_OFF, f"the channel {channel} keeps no history")
        try:
            existed = await self.node.broker.delete_history(channel)
        except BrokerUnavailable as exc:
            raise ProtocolError(UNAVAILABLE, f"{exc}; retry later") from None
        return web.json_response({"channel": channel, "deleted": existed})

    async def disconnect(self, request: web.Request) -> web.Response:
        """POST /api/disconnect {"user", "code"?, "reason"?}: close the user's connections."""
        body = await json_object(request)
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
        body = await json_object(request)
        user, channel = _user(body), _body_channel(body)
        return _reached(user, await self.node.users.unsubscribe(user, channel))

    async def subscribe(self, request: web.Request) -> web.Response:
        """POST /api/subscribe {"user", "channel"}: a server-side subscription of the user's
        hub.v1 connections."""
        body = await json_object(request)
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
    return valid_channel(channel)


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
