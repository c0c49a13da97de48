"""The WebSocket handler (``hub.ws.handler``): the handshake's decision, raw mode's join with
its ``?last=N`` backlog, and the raw publisher's policy."""

from __future__ import annotations

import pytest
from support import recv_n
from support.inprocess import serving
from support.node import RecordingBroker
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hub.core.errors import BrokerUnavailable, CloseCode
from hub.core.namespaces import ChannelOptions, ChannelRules, Namespace

RULES = ChannelRules(
    (Namespace("h.*", ChannelOptions(history_size=10, history_ttl_s=60)),), ChannelOptions()
)


async def refused(url: str, **kwargs: object) -> tuple[int, str]:
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, **kwargs):  # type: ignore[arg-type]
            pass
    response = info.value.response
    return response.status_code, response.body.decode()


async def test_a_raw_backlog_comes_before_live_messages() -> None:
    """?last=2 sends the channel's last two messages, then live ones, none twice."""
    async with serving(rules=RULES) as served:
        for text in (b"1", b"2", b"3"):
            served.node.publish("h.1", text)
        async with connect(served.url("h.1?last=2")) as ws:
            served.node.publish("h.1", b"4")
            assert await recv_n(ws, 3) == ["2", "3", "4"]


async def test_bad_last_values_are_refused_with_400() -> None:
    """?last outside 0..limit, or on a channel without history, is refused at the handshake."""
    async with serving(rules=RULES) as served:
        status, body = await refused(served.url("h.1?last=-1"))
        assert status == 400 and "?last must be an integer" in body
        status, body = await refused(served.url("plain?last=1"))
        assert status == 400 and "keeps none" in body


async def test_an_unknown_subprotocol_and_a_doubled_header_get_400() -> None:
    """Only hub.v1 (or none) is spoken; a handshake header sent twice is refused."""
    async with serving() as served:
        status, body = await refused(served.url(), subprotocols=["chat"])  # type: ignore[list-item]
        assert status == 400 and "'hub.v1'" in body
        status, body = await refused(
            served.url("c"), additional_headers=[("Origin", "a"), ("Origin", "b")]
        )
        assert status == 400 and "more than one Origin" in body


async def test_the_connection_limit_answers_503() -> None:
    """Past --max-connections a handshake gets 503 naming the flag."""
    async with serving(max_connections=1) as served:
        async with connect(served.url("c")):
            status, body = await refused(served.url("c"))
            assert status == 503 and "--max-connections" in body


async def test_a_backlog_that_cannot_be_read_closes_with_1013() -> None:
    """With the history unreachable, a raw ?last join is closed with 1013 (try again)."""
    broker = RecordingBroker()

    async def down(*args: object, **kwargs: object) -> object:
        raise BrokerUnavailable("Redis is unreachable")

    async with serving(rules=RULES, broker=broker) as served:
        broker.read_history = down  # type: ignore[method-assign]
        async with connect(served.url("h.1?last=1")) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == CloseCode.TRY_AGAIN_LATER


async def test_a_raw_sender_over_its_rate_is_closed_with_1008() -> None:
    """With --publish-rate, a raw client that sends faster is closed with 1008 and its
    extra messages are not published."""
    async with serving(publish_rate=1.0, publish_burst=1) as served:
        async with connect(served.url("c")) as ws:
            await ws.send("one")
            await ws.send("two")
            assert await ws.recv() == "one"
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert served.node.num_rate_limited == 1
