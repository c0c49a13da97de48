"""Fault tests count: numbered messages, a publisher that numbers them, and hub.v1 readers
that resume from their position and report lost, duplicated and reordered messages."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from hub.client import Publisher
from hub.core.namespaces import ChannelOptions, ChannelRules
from support.waits import t

__all__ = ["Counts", "Reader", "count", "history_publisher", "publish_numbered"]


def history_publisher(redis_url: str, prefix: str = "hub:") -> Publisher:
    """A hub.client.Publisher for which every channel keeps history (as the hubs of a test
    run with ``--history-size``), so its messages get offsets and can be recovered."""
    options = ChannelOptions(history_size=20000, history_ttl_s=300)
    return Publisher(redis_url, channel_prefix=prefix, rules=ChannelRules((), options))


@dataclass
class Counts:
    lost: list[int]
    duplicated: list[int]
    reordered: int

    @property
    def is_exact(self) -> bool:
        return not self.lost and not self.duplicated and not self.reordered

    def __str__(self) -> str:
        return (
            f"lost {len(self.lost)} {self.lost[:10]}, duplicated {len(self.duplicated)} "
            f"{self.duplicated[:10]}, reordered {self.reordered}"
        )


def count(received: Sequence[int], expected: range) -> Counts:
    """Compare the numbers a subscriber got with those that were sent."""
    seen: set[int] = set()
    duplicated = []
    reordered = 0
    last = -1
    for n in received:
        if n in seen:
            duplicated.append(n)
            continue
        seen.add(n)
        if n < last:
            reordered += 1
        last = max(last, n)
    return Counts([n for n in expected if n not in seen], duplicated, reordered)


async def publish_numbered(
    url: str, channel: str, numbers: range, *, rate: float, key: str = "n"
) -> None:
    """Publish ``{"n": i}`` for each number over hub.v1 at ``rate`` per second, reading the
    acks as they come (a client that reads nothing stops hearing its pongs, and websockets'
    keepalive then closes it), and return once the hub has answered them all."""
    async with connect(url, subprotocols=["hub.v1"]) as ws:  # type: ignore[list-item]
        done = asyncio.Event()

        async def read_acks() -> None:
            async for frame in ws:
                if json.loads(frame).get("id") == "end":
                    done.set()
                    return

        reader = asyncio.create_task(read_acks())
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index, n in enumerate(numbers):
            await ws.send(json.dumps({"op": "publish", "channel": channel, "data": {key: n}}))
            delay = start + (index + 1) / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        await ws.send(json.dumps({"op": "ping", "id": "end"}))
        try:
            await asyncio.wait_for(done.wait(), t(30))
        finally:
            reader.cancel()


@dataclass
class Reader:
    """One hub.v1 subscriber of ``channel`` that keeps its position across connections."""

    channel: str
    numbers: list[int] = field(default_factory=list)
    acks: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[dict[str, Any]] = field(default_factory=list)
    epoch: str | None = None
    offset: int = 0
    #: (session, offset, n) of each message, for a failure's message.
    trace: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def position(self) -> dict[str, Any] | None:
        return None if self.epoch is None else {"epoch": self.epoch, "offset": self.offset}

    async def session(
        self,
        url: str,
        *,
        until: Callable[[Reader], bool],
        timeout: float = 30,
        recover: bool = True,
        on_subscribed: Callable[[], None] | None = None,
    ) -> bool:
        """Connect, subscribe (recovering from the position), read until ``until`` holds
        (True) or the connection drops (False)."""
        request: dict[str, Any] = {"op": "subscribe", "channel": self.channel, "id": "sub"}
        if recover and self.position is not None:
            request["recover"] = {self.channel: self.position}
        try:
            async with asyncio.timeout(t(timeout)):
                async with connect(url, subprotocols=["hub.v1"]) as ws:  # type: ignore[list-item]
                    await ws.send(json.dumps(request))
                    async for frame in ws:
                        self._on_frame(json.loads(frame))
                        if self.acks and on_subscribed is not None:
                            on_subscribed()
                            on_subscribed = None
                        if until(self):
                            return True
        except (ConnectionClosed, OSError):
            return False
        return False

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "ack" and frame.get("op") == "subscribe":
            self.acks.append(frame)
            position = frame.get("positions", {}).get(self.channel)
            # Recovered: the replay follows and moves the offset; otherwise start at the top.
            if position is not None and position.get("recovered") is not True:
                self.epoch, self.offset = position["epoch"], position["offset"]
        elif kind == "message" and frame["channel"] == self.channel:
            self.numbers.append(frame["data"]["n"])
            self.trace.append((len(self.acks), frame.get("offset", -1), frame["data"]["n"]))
            if "offset" in frame:
                self.offset = frame["offset"]
        elif kind == "gap":
            self.gaps.append(frame)
            self.epoch, self.offset = frame["epoch"], frame["offset"]
        elif kind == "error":
            raise AssertionError(f"error frame: {frame}")

    async def resume(
        self,
        urls: Sequence[str],
        *,
        until: Callable[[Reader], bool],
        attempts: int = 40,
        timeout: float = 30,
    ) -> None:
        """Keep reading across dropped connections, trying each URL in turn."""
        for attempt in range(attempts):
            if await self.session(urls[attempt % len(urls)], until=until, timeout=timeout):
                return
            with contextlib.suppress(Exception):
                await asyncio.sleep(0.2)
        raise AssertionError(f"{self.channel}: never got what it waited for: {self.numbers[-5:]}")
