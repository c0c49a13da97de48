"""How the client turns hub.v1 frames into a subscription's items, without a socket: gaps and
lost positions are raised, never skipped; a replay that overlaps the live stream is not
delivered twice."""

from __future__ import annotations

import asyncio

import pytest

from hub.client import Client, Gap, Message, NotRecovered, Position, RequestRefused, Subscription


def subscribed(client: Client, channel: str, position: Position | None) -> Subscription:
    sub = Subscription(channel, recover=True, since=position, size=100)
    client._subs[channel] = sub
    return sub


async def test_a_gap_frame_is_raised_and_moves_the_position() -> None:
    client = Client("ws://127.0.0.1:1")
    sub = subscribed(client, "news", Position("e1", 4))
    await client._dispatch({"type": "gap", "channel": "news", "epoch": "e1", "offset": 9})
    await client._dispatch({"type": "message", "channel": "news", "offset": 10, "text": "x"})
    with pytest.raises(Gap) as raised:
        await anext(sub)
    assert (raised.value.channel, raised.value.epoch, raised.value.offset) == ("news", "e1", 9)
    assert await anext(sub) == Message("news", "text", text="x", offset=10, epoch="e1")
    assert sub.position == Position("e1", 10)


async def test_offsets_already_delivered_are_dropped() -> None:
    """What came live and then again in a replay reaches the application once."""
    client = Client("ws://127.0.0.1:1")
    sub = subscribed(client, "news", Position("e1", 0))
    for offset in (1, 2, 2, 1, 3):
        frame = {"type": "message", "channel": "news", "offset": offset, "data": offset}
        await client._dispatch(frame)
    got = [(await anext(sub)).data for _ in range(3)]
    assert got == [1, 2, 3]


async def test_recovered_false_is_raised_and_recovered_true_is_not() -> None:
    client = Client("ws://127.0.0.1:1")
    sub = subscribed(client, "news", Position("old", 7))
    client._pending[1] = (asyncio.get_running_loop().create_future(), sub)
    ack = {"type": "ack", "op": "subscribe", "id": 1, "channels": ["news"]}
    await client._dispatch(
        {**ack, "positions": {"news": {"epoch": "new", "offset": 3, "recovered": False}}}
    )
    with pytest.raises(NotRecovered) as raised:
        await anext(sub)
    assert (raised.value.epoch, raised.value.offset) == ("new", 3)
    assert sub.position == Position("new", 3)

    client._pending[2] = (asyncio.get_running_loop().create_future(), sub)
    recovered = {"epoch": "new", "offset": 5, "recovered": True}
    await client._dispatch({**ack, "id": 2, "positions": {"news": recovered}})
    await client._dispatch({"type": "message", "channel": "news", "offset": 4, "data": 4})
    assert (await anext(sub)).data == 4  # the replay, from the position kept (3), not the top


async def test_a_bounded_buffer_holds_the_reader() -> None:
    """A full subscription buffer stops the frame reader instead of growing."""
    client = Client("ws://127.0.0.1:1")
    sub = Subscription("c", recover=True, since=None, size=2)
    client._subs["c"] = sub
    for n in range(2):
        await client._dispatch({"type": "message", "channel": "c", "data": n})
    third = asyncio.create_task(client._dispatch({"type": "message", "channel": "c", "data": 2}))
    await asyncio.sleep(0.05)
    assert not third.done()
    assert (await anext(sub)).data == 0
    await asyncio.wait_for(third, 1)


async def test_a_refused_resubscribe_ends_the_subscription_with_its_error() -> None:
    """forbidden (say, a new token without the right) is final: every next() raises it."""
    client = Client("ws://127.0.0.1:1")
    sub = subscribed(client, "news", None)
    client._pending[1] = (asyncio.get_running_loop().create_future(), sub)
    error = {"type": "error", "id": 1, "code": "forbidden", "message": "no"}
    await client._dispatch(error)
    for _ in range(2):
        with pytest.raises(RequestRefused, match="forbidden"):
            await anext(sub)
    assert "news" not in client._subs


async def test_unavailable_is_retried_not_final() -> None:
    """unavailable (Redis cannot serve the history read now) keeps the subscription, to be
    sent again."""
    client = Client("ws://127.0.0.1:1", backoff_max_s=0.1)
    client.start()
    sub = subscribed(client, "news", Position("e1", 3))
    client._pending[1] = (asyncio.get_running_loop().create_future(), sub)
    await client._dispatch({"type": "error", "id": 1, "code": "unavailable", "message": "later"})
    assert client._subs["news"] is sub and sub._end is None and not sub._ready.done()
    assert len(client._retries) == 1
    await client.close()
    with pytest.raises(StopAsyncIteration):
        await anext(sub)
