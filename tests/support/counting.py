"""Fault tests count: numbered messages, a publisher that numbers them, and hub.v1 readers
that resume from their position and report lost, duplicated and reordered messages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from hub.client import Publisher
from hub.core.namespaces import ChannelOptions, ChannelRules
from support.ops import readiness_log
from support.processes import HubProcess
from support.waits import t

__all__ = [
    "Counts",
    "KillRun",
    "Reader",
    "count",
    "history_publisher",
    "publish_numbered",
    "publish_round_robin",
    "stream_through_a_kill",
]


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
    """Publish ``{"n": i}`` for each number over hub.v1 at ``rate`` per second, and return
    once the hub has answered them all."""
    await publish_round_robin(url, [channel], numbers, rate=rate, key=key)


async def publish_round_robin(
    url: str, channels: Sequence[str], numbers: range, *, rate: float, key: str = "n"
) -> None:
    """``{"n": i}`` to each channel in turn, for each number, at ``rate`` messages per second
    in all, over hub.v1, reading the acks as they come (a client that reads nothing stops
    hearing its pongs, and websockets' keepalive then closes it); returns once the hub has
    answered them all."""
    async with connect(url, subprotocols=["hub.v1"]) as ws:  # type: ignore[list-item]
        done = asyncio.Event()

        async def read_acks() -> None:
            async for frame in ws:
                if json.loads(frame).get("id") == "end":
                    done.set()
                    return

        reader = asyncio.create_task(read_acks())
        loop = asyncio.get_running_loop()
        start, sent = loop.time(), 0
        for n in numbers:
            for channel in channels:
                await ws.send(json.dumps({"op": "publish", "channel": channel, "data": {key: n}}))
                sent += 1
                delay = start + sent / rate - loop.time()
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


@dataclass
class KillRun:
    """What a raw subscriber got while a Redis master was killed mid-stream."""

    received: list[int]
    #: The first number sent once the new master was up, and the number of messages sent.
    up_at: int
    total: int
    #: /readyz statuses of the publishing hub, in order.
    statuses: list[int]

    def after_up(self) -> Counts:
        return count([m for m in self.received if m >= self.up_at], range(self.up_at, self.total))

    def before_up(self) -> Counts:
        return count([m for m in self.received if m < self.up_at], range(self.up_at))


async def stream_through_a_kill(
    a: HubProcess,
    b: HubProcess,
    channel: str,
    kill: Callable[[], None],
    is_up: Callable[[], bool],
) -> KillRun:
    """Send numbered raw messages through hub A at 100/s to a raw subscriber of hub B; after
    100, ``kill`` the master; once ``is_up`` (called in a thread) says a new one serves, send
    200 more, and return what arrived, with A's /readyz statuses meanwhile."""
    stop = threading.Event()
    log = readiness_log(a, stop)
    received: list[int] = []
    up_at = None
    async with connect(b.url(channel), open_timeout=t(5)) as subscriber:

        async def read() -> None:
            async for frame in subscriber:
                received.append(int(frame))

        reading = asyncio.create_task(read())
        async with connect(a.url(channel), open_timeout=t(5)) as publisher:
            n, deadline = 0, time.monotonic() + t(40)
            while time.monotonic() < deadline:
                await publisher.send(str(n))
                n += 1
                if n == 100:
                    kill()
                if n > 100 and up_at is None and await asyncio.to_thread(is_up):
                    up_at = n
                if up_at is not None and n >= up_at + 200:
                    break
                await asyncio.sleep(0.01)
            assert up_at is not None, "no new master within the deadline"
        await asyncio.sleep(t(3))
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
    stop.set()
    a.wait_ready(10)
    return KillRun(received, up_at, n, [status for _, status in log])
