"""A hub.v1 connection's request loop (``hub.ws.session``): subscribe with its ack and
replays, its refusals, unsubscribe, history and presence requests, binary publishes."""

from __future__ import annotations

import json

from support import recv_n
from support.inprocess import serving
from support.node import RecordingBroker
from support.ws import assert_silent
from websockets.asyncio.client import ClientConnection, connect

from hub.core.errors import BrokerUnavailable
from hub.core.namespaces import ChannelOptions, ChannelRules, Namespace

RULES = ChannelRules(
    (Namespace("h.*", ChannelOptions(history_size=10, history_ttl_s=60)),), ChannelOptions()
)


async def request(ws: ClientConnection, **fields: object) -> dict[str, object]:
    await ws.send(json.dumps(fields))
    answer: dict[str, object] = json.loads(await ws.recv())
    return answer


async def test_a_recovering_subscribe_gets_its_ack_then_the_replay() -> None:
    """The ack gives each history channel's position and recovery verdict, and the missed
    messages follow it, before anything live."""
    async with serving(rules=RULES) as served:
        for text in (b"1", b"2", b"3"):
            served.node.publish("h.1", text)
        async with connect(served.url(), subprotocols=["hub.v1"]) as ws:
            first = await request(ws, op="subscribe", channels=["h.1"], id=1)
            epoch = first["positions"]["h.1"]["epoch"]  # type: ignore[index]
            assert first["positions"] == {"h.1": {"epoch": epoch, "offset": 3}}
        async with connect(served.url(), subprotocols=["hub.v1"]) as ws:
            recover = {"h.1": {"epoch": epoch, "offset": 1}}
            ack = await request(
                ws, op="subscribe", channels=["h.1", "plain"], recover=recover, id=2
            )
            assert ack["positions"] == {"h.1": {"epoch": epoch, "offset": 3, "recovered": True}}
            assert ack["channels"] == ["h.1", "plain"]
            replay = [json.loads(f) for f in await recv_n(ws, 2)]
            assert [(m["offset"], m["text"]) for m in replay] == [(2, "2"), (3, "3")]


async def test_too_many_subscriptions_is_an_error_frame_and_the_socket_stays() -> None:
    """Past --max-subscriptions the subscribe is refused with its code; the connection keeps
    working."""
    async with serving(max_subscriptions=2) as served:
        async with connect(served.url(), subprotocols=["hub.v1"]) as ws:
            refused = await request(ws, op="subscribe", channels=["a", "b", "c"], id=1)
            assert refused["type"] == "error" and refused["code"] == "too_many_subscriptions"
            assert refused["id"] == 1 and "--max-subscriptions" in str(refused["message"])
            ok = await request(ws, op="subscribe", channels=["a"], id=2)
            assert ok["type"] == "ack"


async def test_a_broker_that_cannot_subscribe_makes_the_subscribe_unavailable() -> None:
    """A SUBSCRIBE that fails with the broker away answers unavailable, and nothing stays
    subscribed."""
    broker = RecordingBroker()

    async def down(channel: str) -> None:
        raise BrokerUnavailable("Redis is unreachable")

    async with serving(broker=broker) as served:
        broker.subscribe = down  # type: ignore[method-assign]
        async with connect(served.url(), subprotocols=["hub.v1"]) as ws:
            answer = await request(ws, op="subscribe", channels=["a", "b"], id=7)
            assert answer["code"] == "unavailable" and "nothing was subscribed" in str(
                answer["message"]
            )
            assert served.node.num_subscriptions == 0


async def test_unsubscribe_is_acked_and_stops_deliveries() -> None:
    """After the unsubscribe's ack nothing more arrives from that channel."""
    async with serving() as served:
        async with connect(served.url(), subprotocols=["hub.v1"]) as ws:
            await request(ws, op="subscribe", channels=["a"], id=1)
            ack = await request(ws, op="unsubscribe", channels=["a"], id=2)
            assert ack == {"type": "ack", "op": "unsubscribe", "id": 2, "channels": ["a"]}
            served.node.publish("a", b"late")
            await assert_silent(ws)


async def test_history_and_presence_requests_on_plain_channels_are_refused() -> None:
    """A history or presence request on a channel that keeps none answers with the code and
    the request's id."""
    async with serving() as served:
        async with connect(served.url(), subprotocols=["hub.v1"]) as ws:
            history = await request(ws, op="history", channel="a", id=3)
            assert (history["code"], history["id"]) == ("history_off", 3)
            presence = await request(ws, op="presence", channel="a", id=4)
            assert (presence["code"], presence["id"]) == ("presence_off", 4)


async def test_a_binary_publish_reaches_subscribers_without_an_ack() -> None:
    """A binary frame "<channel>\\n<bytes>" is published as binary, with no ack."""
    async with serving() as served:
        async with connect(served.url(), subprotocols=["hub.v1"]) as ws:
            await request(ws, op="subscribe", channels=["b"], id=1)
            await ws.send(b"b\n\x00\x01")
            frame = json.loads(await ws.recv())
            assert frame["type"] == "message" and frame["binary"] == "AAE="
            await assert_silent(ws)
