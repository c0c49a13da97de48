"""The HTTP side in this process: a started Node on the memory broker and its PublishApi on a
loopback port the OS picks, as App wires them; and an aiohttp client to call it.

The ``start_api`` fixture (tests/http/conftest.py) starts them; the tests import the rest
from here (a module of its own: importing from a conftest depends on which one was last)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
from support import t

from hub.brokers.memory import MemoryBroker
from hub.core.auth import Authenticator
from hub.core.namespaces import ChannelOptions, ChannelRules, Namespace
from hub.http.api import PublishApi
from hub.node import Node

SECRET = "a-secret-that-is-long-enough-for-hs256!"
API_KEY = "backend-key"
#: news* keeps a history; room* keeps presence; anything else neither.
RULES = ChannelRules(
    (
        Namespace("news*", ChannelOptions(history_size=100, history_ttl_s=600)),
        Namespace("room*", ChannelOptions(presence=True)),
    ),
    ChannelOptions(),
)


def token(**claims: Any) -> str:
    """A client JWT of SECRET; ``exp`` an hour away unless given."""
    return jwt.encode({"exp": int(time.time()) + 3600, **claims}, SECRET, algorithm="HS256")


@dataclass
class Served:
    node: Node
    broker: MemoryBroker
    api: PublishApi
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        """(status, headers, the JSON body or None) of one request."""
        timeout = aiohttp.ClientTimeout(total=t(10))
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, self.url + path, data=body, headers=headers) as response,
        ):
            raw = await response.read()
            document = await response.json(content_type=None) if raw else None
            return response.status, dict(response.headers), document


StartApi = Callable[..., Awaitable[Served]]


@asynccontextmanager
async def api_starter() -> AsyncIterator[StartApi]:
    """Start a node and its API; PublishApi's options are the call's (an API key, auth with
    SECRET by default). All are stopped on exit."""
    started: list[Served] = []

    async def start(*, broker: MemoryBroker | None = None, **options: Any) -> Served:
        broker = broker or MemoryBroker()
        node = Node(broker=broker, max_buffered_bytes=1 << 20, unsubscribe_delay_s=0, rules=RULES)
        await node.start()
        options.setdefault("api_key", API_KEY)
        options.setdefault("max_message_bytes", 4096)
        options.setdefault("authenticator", Authenticator.create(secret=SECRET, public_key=None))
        api = PublishApi(node=node, **options)
        await api.start("127.0.0.1", 0)
        assert api.runner is not None
        served = Served(node, broker, api, api.runner.addresses[0][1])
        started.append(served)
        return served

    try:
        yield start
    finally:
        for served in started:
            await served.api.stop()
            await served.node.close()
