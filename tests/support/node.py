"""Fakes for the node's tests: the memory broker that records (un)subscribes, a member that
keeps what it is sent, and a presence store that records its writes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence

from hub.brokers.base import presence_event
from hub.brokers.memory import MemoryBroker
from hub.core.envelope import Envelope
from hub.core.formats import RAW, V1

__all__ = ["DELAY_S", "FakeMember", "FakeStore", "RecordingBroker", "V1Member", "calls"]

DELAY_S = 0.05


class RecordingBroker(MemoryBroker):
    """The memory broker, recording each (un)subscribe of a client channel (not the control
    channels' own); it can hold or fail a SUBSCRIBE."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []
        self.gate: asyncio.Event | None = None
        self.fail_next = False

    async def subscribe(self, channel: str) -> None:
        if channel.startswith("$"):  # the node's control channels (hub.node.control)
            await super().subscribe(channel)
            return
        self.calls.append(("subscribe", channel))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("Redis is unreachable")
        await super().subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.calls.append(("unsubscribe", channel))
        await super().unsubscribe(channel)


class FakeMember:
    """A member that keeps what it is sent: RAW bytes, and what a join wrote at once."""

    format = RAW
    number = 0
    user = None

    def __init__(self) -> None:
        self.channels: set[str] = set()
        self.received: list[bytes] = []
        self.written: list[tuple[bytes | None, list[tuple[str, list[Envelope]]]]] = []
        self.closed: tuple[int, str] | None = None

    def send_batch(self, data: bytes) -> int:
        self.received.append(data)
        return 0

    def send_messages(self, channel: str, messages: list[Envelope]) -> int:
        raise AssertionError("a RAW client is sent shared bytes")

    def write_now(self, reply: bytes | None, batches: list[tuple[str, list[Envelope]]]) -> int:
        self.written.append((reply, batches))
        return 0

    def disconnect(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


class V1Member(FakeMember):
    """A hub.v1 member: it is sent shared V1 bytes."""

    format = V1


class FakeStore:
    """A presence store that records its writes and answers reads from them; its join and
    leave events are recorded, and published through ``publish`` when given."""

    def __init__(self, publish: Callable[[str, bytes], bool] | None = None) -> None:
        self._publish = publish
        self.members: dict[str, dict[str, str | None]] = {}
        self.heartbeats: list[list[str]] = []
        self.is_down = False
        #: The join and leave events it published: (channel, envelope).
        self.events: list[tuple[str, bytes]] = []

    def add(
        self, channel: str, client: str, user: str | None, ttl_s: float, *, announce: bool = False
    ) -> None:
        self.members.setdefault(channel, {})[client] = user
        if announce:
            self._announce(channel, presence_event(True, client, user))

    def remove(
        self, channel: str, client: str, user: str | None = None, *, announce: bool = False
    ) -> None:
        self.members.get(channel, {}).pop(client, None)
        if announce:
            self._announce(channel, presence_event(False, client, user))

    def _announce(self, channel: str, event: bytes) -> None:
        self.events.append((channel, event))
        if self._publish is not None:
            self._publish(channel, event)

    def heartbeat(self, channels: Sequence[str], ttl_s: float) -> None:
        self.heartbeats.append(list(channels))

    def take_dropped(self) -> Collection[str]:
        return ()

    async def read(self, channel: str) -> list[tuple[str, str | None]]:
        from hub.core.errors import BrokerUnavailable

        if self.is_down:
            raise BrokerUnavailable("the presence store is unreachable")
        return list(self.members.get(channel, {}).items())


def calls(node: object) -> list[tuple[str, str]]:
    """The (un)subscribes a node's RecordingBroker saw."""
    broker = getattr(node, "broker", None)
    assert isinstance(broker, RecordingBroker)
    return broker.calls
