"""The control channel (``hub.node.control``): a command reaches every instance and the
sender gathers their replies, within its timeout, naming the live instances that were
silent. Several Controls on one in-memory bus, no Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from support.node import FakeStore

from hub.core.errors import ProtocolError
from hub.core.protocol import UNAVAILABLE
from hub.node.control import COMMANDS_CHANNEL, INSTANCES_CHANNEL, Command, Control


class Bus:
    """Pub/sub between Controls: a message reaches every subscriber of its channel, on the
    next loop turn, as a broker delivers."""

    def __init__(self) -> None:
        self.subscribers: dict[str, list[Control]] = {}
        self.controls: dict[str, Control] = {}
        self.is_full = False

    def end(self, name: str) -> tuple[object, object]:
        async def subscribe(channel: str) -> None:
            self.subscribers.setdefault(channel, []).append(self.controls[name])

        def publish(channel: str, payload: bytes) -> bool:
            if self.is_full:
                return False
            loop = asyncio.get_running_loop()
            for control in self.subscribers.get(channel, []):
                loop.call_soon(control.on_messages, channel, [payload])
            return True

        return publish, subscribe


async def instance(bus: Bus, store: FakeStore, name: str, answer: bool = True) -> Control:
    publish, subscribe = bus.end(name)
    control = Control(
        name=name,
        publish=publish,  # type: ignore[arg-type]
        subscribe=subscribe,  # type: ignore[arg-type]
        store=store,
        meta={"version": "t"},
        timeout_s=0.5,
    )
    bus.controls[name] = control

    async def handle(command: Command) -> Command:
        return {"count": 2, "op": command["op"]}

    if answer:
        control.handler = handle
    await control.start()
    return control


async def test_a_command_gathers_every_live_instances_reply() -> None:
    bus, store = Bus(), FakeStore()
    a, b = await instance(bus, store, "a"), await instance(bus, store, "b")
    await asyncio.sleep(0)  # the heartbeats' first write
    assert sorted(store.members[INSTANCES_CHANNEL]) == ["a", "b"]
    assert [n for n, _ in await a.instances()] == ["a", "b"]
    started = asyncio.get_running_loop().time()
    replies = await a.request({"op": "info"})
    assert asyncio.get_running_loop().time() - started < 0.4  # no wait for the timeout
    assert [r["instance"] for r in replies.replies] == ["a", "b"]
    assert replies.count() == 4 and replies.missing == []
    b.close()
    a.close()
    assert "b" not in store.members[INSTANCES_CHANNEL]


async def test_a_silent_instance_is_named_after_the_timeout() -> None:
    bus, store = Bus(), FakeStore()
    a = await instance(bus, store, "a")
    await instance(bus, store, "mute", answer=False)
    store.add(INSTANCES_CHANNEL, "crashed", '{"version":"t"}', 15)  # not yet expired
    await asyncio.sleep(0)
    replies = await a.request({"op": "info"})
    assert [r["instance"] for r in replies.replies] == ["a"]
    assert replies.missing == ["crashed", "mute"]


async def test_unavailable_when_the_store_or_the_broker_cannot_answer() -> None:
    bus, store = Bus(), FakeStore()
    a = await instance(bus, store, "a")
    store.is_down = True
    with pytest.raises(ProtocolError) as refused:
        await a.request({"op": "info"})
    assert refused.value.code == UNAVAILABLE
    store.is_down, bus.is_full = False, True
    with pytest.raises(ProtocolError) as refused:
        await a.request({"op": "info"})
    assert refused.value.code == UNAVAILABLE


async def test_junk_on_the_control_channel_is_ignored() -> None:
    bus, store = Bus(), FakeStore()
    a = await instance(bus, store, "a")
    payloads: Sequence[bytes] = [b"not json", b"[1]", b'{"op":"info"}']  # no reply channel
    a.on_messages(COMMANDS_CHANNEL, payloads)
    a.on_messages(a.reply_channel, [b'{"id":"unknown","instance":"x"}'])
    await asyncio.sleep(0.05)
    assert (await a.request({"op": "info"})).count() == 2
