"""The fan-out's view of a WebSocket connection (``hub.ws.subscribers``): raw and hub.v1
frames, compressed connections that encode for themselves, and what raw mode never sends."""

from __future__ import annotations

import asyncio
import json

from support import recv_n
from support.inprocess import serving
from support.ws import assert_silent
from websockets.asyncio.client import connect

from hub.core.envelope import BINARY, EVENT, GAP, TEXT, Envelope
from hub.core.formats import PER_CONNECTION, RAW, V1
from hub.ws.subscribers import RawClient, V1Client

INTERNAL = [Envelope(b"", GAP, 4, "e"), Envelope(b'j{"client":"x","user":null}', EVENT)]


async def only_member(node: object, channel: str) -> RawClient:
    subs = node._registry.subscribers(channel)  # type: ignore[attr-defined]
    for _ in range(100):
        if subs:
            break
        await asyncio.sleep(0.01)
        subs = node._registry.subscribers(channel)  # type: ignore[attr-defined]
    [member] = list(subs)
    assert isinstance(member, RawClient)
    return member


async def test_a_raw_member_gets_text_and_binary_frames_and_no_internal_marker() -> None:
    """Raw mode writes text as text and binary as binary, and leaves gap markers and
    presence events out, plain and compressed alike."""
    for compression in (False, True):
        async with serving(compression=compression) as served:
            async with connect(
                served.url("c"), compression="deflate" if compression else None
            ) as ws:
                member = await only_member(served.node, "c")
                assert member.format == (PER_CONNECTION if compression else RAW)
                batch = [Envelope(b"t", TEXT), *INTERNAL, Envelope(b"\x00b", BINARY)]
                if compression:
                    member.send_messages("c", batch)
                else:
                    from hub.core.formats import ENCODERS

                    member.send_batch(ENCODERS[RAW]("c", batch))
                assert await recv_n(ws, 2) == ["t", b"\x00b"]
                await assert_silent(ws)


async def test_a_compressed_v1_member_encodes_events_and_gaps_as_v1_frames() -> None:
    """A compressed hub.v1 connection encodes per connection, with the same frames as the
    shared V1 bytes: a message, a gap and an event."""
    async with serving(compression=True) as served:
        async with connect(served.url(), subprotocols=["hub.v1"], compression="deflate") as ws:
            await ws.send(json.dumps({"op": "subscribe", "channels": ["c"], "id": 1}))
            assert json.loads(await ws.recv())["type"] == "ack"
            member = await only_member(served.node, "c")
            assert isinstance(member, V1Client) and member.format == PER_CONNECTION
            member.send_messages("c", [Envelope(b"m"), *INTERNAL])
            frames = [json.loads(f) for f in await recv_n(ws, 3)]
            assert [f["type"] for f in frames] == ["message", "gap", "join"]


async def test_write_now_sends_the_reply_before_the_replays() -> None:
    """write_now puts the reply first and then each channel's batch, in one write."""
    async with serving() as served:
        async with connect(served.url(), subprotocols=["hub.v1"]) as ws:
            await ws.send(json.dumps({"op": "subscribe", "channels": ["c"], "id": 1}))
            await ws.recv()
            member = await only_member(served.node, "c")
            assert member.format == V1
            member.write_now(b'{"type":"first"}', [("c", [Envelope(b"1"), Envelope(b"2")])])
            frames = [json.loads(f) for f in await recv_n(ws, 3)]
            assert frames[0] == {"type": "first"}
            assert [f["text"] for f in frames[1:]] == ["1", "2"]


async def test_a_closed_member_is_skipped() -> None:
    """After the connection closed, a write returns -1 and sends nothing."""
    async with serving() as served:
        async with connect(served.url("c")):
            member = await only_member(served.node, "c")
        await asyncio.sleep(0.05)
        assert member.send_batch(b"x") == -1
