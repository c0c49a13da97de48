"""hub/http/sse.py (``SseStreams``) in this process, read over raw HTTP: what tests/e2e/
test_sse.py does not pin. (Named so because pytest's import mode needs unique basenames.)"""

from __future__ import annotations

import asyncio
import time

from api_in_process import API_KEY, StartApi, token
from support import async_wait_until, t
from support.sse import SseStream, open_sse

from hub.core.envelope import JSON, encode_envelope, encode_event
from hub.http.sse import CLOSE_TIMEOUT_S, RETRY_MS

READER = token(sub="r", subscribe="*")


async def opened(port: int, path: str, **headers: str) -> tuple[SseStream, dict[str, object]]:
    stream = await open_sse(port, path, headers)
    assert stream.status == 200, stream.headers
    first = await stream.next()
    assert first is not None and first.event == "subscribed", first
    return stream, {"id": first.id, "retry": first.retry, **first.json}


async def test_the_preamble_and_headers(start_api: StartApi) -> None:
    """No cache nor proxy buffering; the first event has a retry, and a position on history."""
    served = await start_api()
    stream, info = await opened(served.port, f"/sse/news.1?token={READER}")
    assert stream.headers["cache-control"] == "no-store"
    assert stream.headers["x-accel-buffering"] == "no"
    assert stream.headers["transfer-encoding"] == "chunked"
    assert isinstance(info["retry"], int) and RETRY_MS[0] <= info["retry"] <= RETRY_MS[1]
    assert info["id"] == f"{info['epoch']}:0" and info["offset"] == 0
    await stream.close()
    stream, info = await opened(served.port, f"/sse/plain?token={READER}")
    assert {k: v for k, v in info.items() if k != "retry"} == {
        "id": None,
        "type": "subscribed",
        "channel": "plain",
    }
    await stream.close()


async def test_the_last_event_id_header_wins_over_the_query(start_api: StartApi) -> None:
    """Last-Event-ID wins over ?last_event_id; its replay precedes live messages, once each."""
    served = await start_api()
    for n in range(5):
        assert served.node.publish("news", b'{"n":%d}' % n, JSON)
    stream, info = await opened(served.port, f"/sse/news?token={READER}")
    epoch = info["epoch"]
    await stream.close()
    path = f"/sse/news?token={READER}&last_event_id={epoch}:1"
    stream, info = await opened(served.port, path, **{"Last-Event-ID": f"{epoch}:3"})
    assert info["recovered"] is True and info["offset"] == 5
    served.node.publish("news", b'{"n":5}', JSON)
    events = await stream.take(3)
    assert [e.id for e in events] == [f"{epoch}:{offset}" for offset in (4, 5, 6)]
    assert [e.json["data"]["n"] for e in events] == [3, 4, 5]
    await stream.close()


async def test_expiry_is_not_held_back_by_the_keepalive(start_api: StartApi) -> None:
    """At exp the stream gets `expired` and its end, however far the keepalive, and leaves."""
    served = await start_api(sse_keepalive_s=60)
    short = token(subscribe="news", exp=int(time.time()) + 2)
    stream, _ = await opened(served.port, f"/sse/news?token={short}")
    started = time.monotonic()
    event = await stream.next(timeout=10)
    assert event is not None and event.event == "expired", event
    assert "last_event_id" in event.json["message"]
    assert time.monotonic() - started < t(5)
    assert await stream.next() is None and stream.is_ended
    assert stream.comments == []  # no keepalive came first
    await async_wait_until(lambda: not served.api.sse.clients, 5, "the stream to be dropped")
    assert dict(served.node.channels()) == {}
    await stream.close()


async def test_a_reader_that_leaves_leaves_its_channel_at_once(start_api: StartApi) -> None:
    """A stream whose reader closed leaves its channel at once, not at its next write."""
    served = await start_api(sse_keepalive_s=60)
    stream, _ = await opened(served.port, f"/sse/idle?token={READER}")
    assert dict(served.node.channels()) == {"idle": 1}
    await stream.close()
    await async_wait_until(lambda: not dict(served.node.channels()), 5, "the stream to leave")
    assert not served.api.sse.clients


async def test_close_ends_every_stream_and_refuses_new_ones(start_api: StartApi) -> None:
    """close() ends every stream with its last chunk; a new one meanwhile gets 503 unavailable."""
    served = await start_api(sse_keepalive_s=60)
    streams = [(await opened(served.port, f"/sse/c{n}?token={READER}"))[0] for n in range(3)]
    async with asyncio.timeout(t(CLOSE_TIMEOUT_S)):
        await served.api.sse.close()
    assert not served.api.sse.clients and dict(served.node.channels()) == {}
    for stream in streams:
        assert await stream.next(timeout=5) is None and stream.is_ended
        await stream.close()
    refused = await open_sse(served.port, f"/sse/c0?token={READER}")
    assert refused.status == 503 and '"unavailable"' in refused.headers["body"]


async def test_a_batch_of_presence_events_only_keeps_the_stream_framed(
    start_api: StartApi,
) -> None:
    """A batch of join/leave events only (unfiltered here) writes no chunk: the stream goes on."""
    served = await start_api()
    stream, _ = await opened(served.port, f"/sse/plain?token={READER}")
    served.broker.publish("plain", encode_event(True, b'{"client":"x","user":null}'))
    await asyncio.sleep(0.05)  # its own batch, on its own loop turn
    served.broker.publish("plain", encode_envelope(b'{"n":1}', JSON))
    event = await stream.next()
    assert event is not None and event.json["data"] == {"n": 1}, event
    assert not stream.is_ended
    await stream.close()


async def test_a_backend_key_is_no_stream_token(start_api: StartApi) -> None:
    """GET /sse takes only a client token, even from a caller that has the API key."""
    served = await start_api()
    refused = await open_sse(served.port, "/sse/news", {"Authorization": f"Bearer {API_KEY}"})
    assert refused.status == 401 and "invalid token" in refused.headers["body"]
