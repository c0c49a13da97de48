"""The HTTP API's reads, for a backend: ``GET /api/history/<channel>`` and
``GET /api/presence/<channel>`` (the hub.v1 answers), and ``GET /api/channels``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from hub.core.errors import ProtocolError
from hub.core.frames import history_frame
from hub.core.protocol import BAD_FIELD, DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT, position_from
from hub.http.inputs import error_answer, valid_channel
from hub.node import Node

__all__ = ["Reads"]

#: The HTTP API's one logger, whichever of its modules writes the line.
logger = logging.getLogger("hub.http.api")


class Reads:
    """The read endpoints' handlers; ``PublishApi`` routes to them."""

    def __init__(
        self, node: Node, list_channels: Callable[[], Awaitable[dict[str, int]]] | None
    ) -> None:
        self.node = node
        #: A short-lived redis-py asyncio client of the hubs' Redis (None: the memory broker).
        #: Every channel some process subscribes to in Redis, with their number.
        self.list_channels = list_channels

    async def history(self, request: web.Request) -> web.Response:
        """GET /api/history/<channel>?limit=50&since=EPOCH:OFFSET: the hub.v1 history answer."""
        channel = valid_channel(request.match_info["channel"])
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
        channel = valid_channel(request.match_info["channel"])
        return web.json_response({"type": "presence", **await self.node.presence.read(channel)})

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
            return error_answer(503, "broker_unavailable", f"cannot ask Redis for channels: {exc}")
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
