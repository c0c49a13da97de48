"""GET /sse/<channel> and client-token publishes, over raw HTTP against real hub and
redis-server processes: event ids, Last-Event-ID resume on any instance, refusals,
keepalives, a slow reader cut off, and a clean end at shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from support import HubProcess, RedisServer, async_wait_until, http, scrape, t, total
from support.counting import count
from support.sse import SseStream, open_sse

SECRET = "a-secret-that-is-long-enough-for-hs256!"
API_KEY = "backend-key"


def token(**claims: object) -> str:
    return jwt.encode({"exp": int(time.time()) + 3600, **claims}, SECRET, algorithm="HS256")


READER = token(sub="r", subscribe="news*")
WRITER = token(sub="w", channels="news*")


def hub_args(redis_url: str, *extra: str) -> tuple[str, ...]:
    return (
        "--redis", redis_url, "--workers", "1", "--unsubscribe-delay-s", "0.2",
        "--history-size", "1000", "--history-ttl-s", "600",
        "--jwt-secret", SECRET, "--api-key", API_KEY, "--sse-keepalive-s", "0.5", *extra,
    )  # fmt: skip


@pytest.fixture
def sse_hub(tmp_path: Path, own_redis: RedisServer) -> Iterator[HubProcess]:
    with HubProcess(*hub_args(own_redis.url), api=True, log_dir=tmp_path) as hub:
        yield hub.wait_ready()


def post(hub: HubProcess, path: str, body: object, auth: str) -> None:
    """POST ``body`` as JSON to the hub's API with a bearer token; it must succeed."""
    status, answer = http(
        "POST",
        hub.api_url + path,
        json.dumps(body).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {auth}"},
    )
    assert status == 200, answer


def publish(hub: HubProcess, channel: str, n: int) -> None:
    post(hub, f"/api/publish/{channel}", {"n": n}, WRITER)


async def subscribed(hub: HubProcess, path: str, **headers: str) -> tuple[SseStream, dict]:
    stream = await open_sse(hub.api_port, path, headers)
    assert stream.status == 200, stream.headers
    assert stream.headers["content-type"] == "text/event-stream"
    first = await stream.next()
    assert first is not None and first.event == "subscribed"
    return stream, first.json


async def test_events_carry_positions_and_last_event_id_resumes(sse_hub: HubProcess) -> None:
    """Each event's id is epoch:offset; a reconnect with Last-Event-ID gets exactly what it
    missed, then live messages: no gap, no duplicate."""
    stream, info = await subscribed(sse_hub, f"/sse/news?token={READER}")
    epoch = info["epoch"]
    assert info["offset"] == 0 and "recovered" not in info
    for n in range(5):
        publish(sse_hub, "news", n)
    events = await stream.take(5)
    assert [e.id for e in events] == [f"{epoch}:{i}" for i in range(1, 6)]
    assert [e.json for e in events] == [
        {"type": "message", "channel": "news", "offset": i + 1, "data": {"n": i}} for i in range(5)
    ]

    async def counted() -> bool:
        metrics = await scrape(sse_hub.port)
        return (
            total(metrics, "hub_sse_streams") == 1
            and total(metrics, "hub_sse_streams_opened_total") == 1
        )

    await async_wait_until(counted, 10, "the stream in /metrics")
    await stream.close()
    for n in range(5, 10):
        publish(sse_hub, "news", n)
    stream, info = await subscribed(
        sse_hub, f"/sse/news?token={READER}", **{"Last-Event-ID": f"{epoch}:3"}
    )
    assert info == {
        "type": "subscribed",
        "channel": "news",
        "epoch": epoch,
        "offset": 10,
        "recovered": True,
    }
    publish(sse_hub, "news", 10)
    events = await stream.take(8)
    numbers = [e.json["data"]["n"] for e in events]
    counts = count(numbers, range(3, 11))
    assert counts.is_exact, counts
    await stream.close()


async def test_a_position_the_history_lost_is_reported(sse_hub: HubProcess) -> None:
    """A Last-Event-ID of another epoch, or one the hub never wrote, says recovered: false."""
    for last_id in ("not-the-epoch:3", "garbage"):
        stream, info = await subscribed(
            sse_hub, f"/sse/news?token={READER}", **{"Last-Event-ID": last_id}
        )
        assert info["recovered"] is False, last_id
        await stream.close()


async def test_refusals_say_what_to_fix(sse_hub: HubProcess) -> None:
    """No token or a bad one: 401; a channel the token does not allow: 403; a bad channel
    name: 400. A client token publishes only where its claims allow, and reaches nothing
    but the client endpoints; the API key still serves backends."""
    port = sse_hub.api_port
    cases = [
        ("/sse/news", 401, "token is required"),
        ("/sse/news?token=not.a.jwt", 401, "invalid token"),
        (f"/sse/other?token={READER}", 403, "may not subscribe to other"),
        (f"/sse/bad%20name?token={READER}", 400, "bad_channel"),
        (f"/sse/news?token={token(subscribe='news', exp=1)}", 401, "expired"),
    ]
    for path, status, words in cases:
        stream = await open_sse(port, path)
        assert stream.status == status, (path, stream.headers)
        assert words in stream.headers["body"], stream.headers["body"]
    api = sse_hub.api_url
    body = json.dumps({"n": 1}).encode()
    as_json = {"Content-Type": "application/json"}
    status, answer = http(
        "POST", f"{api}/api/publish/news", body, {**as_json, "Authorization": f"Bearer {READER}"}
    )
    assert status == 403 and answer["error"]["code"] == "forbidden", answer
    status, answer = http("POST", f"{api}/api/publish/news?token={WRITER}", body, as_json)
    assert status == 200, answer
    status, answer = http("POST", f"{api}/api/publish/news", body, as_json)
    assert status == 401 and "token is required" in answer["error"]["message"], answer
    status, answer = http("GET", f"{api}/api/channels", None, {"Authorization": f"Bearer {WRITER}"})
    assert status == 401 and "client token" in answer["error"]["message"], answer
    status, answer = http(
        "POST", f"{api}/api/publish/other", body, {**as_json, "Authorization": f"Bearer {API_KEY}"}
    )
    assert status == 200, answer


async def test_a_stream_ends_when_its_token_expires(sse_hub: HubProcess) -> None:
    """At the token's exp the stream gets an `expired` event and ends; a new request with a
    fresh token and ?last_event_id= resumes without a gap."""
    short = token(subscribe="news", exp=int(time.time()) + 2)
    stream, info = await subscribed(sse_hub, f"/sse/news?token={short}")
    publish(sse_hub, "news", 0)
    (event,) = await stream.take(1)
    last = await stream.next(timeout=10)
    assert last is not None and last.event == "expired", last
    assert await stream.next() is None and stream.is_ended
    publish(sse_hub, "news", 1)
    stream, info = await subscribed(sse_hub, f"/sse/news?token={READER}&last_event_id={event.id}")
    assert info["recovered"] is True
    (again,) = await stream.take(1)
    assert again.json["data"] == {"n": 1}
    await stream.close()


async def test_cors_lets_a_browser_page_use_the_client_endpoints(sse_hub: HubProcess) -> None:
    """A page on another origin may stream and publish (preflight included)."""
    stream, _ = await subscribed(
        sse_hub, f"/sse/news?token={READER}", Origin="http://127.0.0.1:1234"
    )
    assert stream.headers["access-control-allow-origin"] == "*"
    await stream.close()
    import urllib.request

    request = urllib.request.Request(
        f"{sse_hub.api_url}/api/publish/news",
        method="OPTIONS",
        headers={"Origin": "http://x.example", "Access-Control-Request-Method": "POST"},
    )
    with urllib.request.urlopen(request, timeout=t(5)) as response:
        assert response.status == 204
        assert "Authorization" in response.headers["Access-Control-Allow-Headers"]


async def test_allowed_origins_bind_the_client_endpoints(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    """With --allowed-origins, a listed page gets its own origin back; any other gets 403."""
    args = hub_args(own_redis.url, "--allowed-origins", "https://app.example.com")
    with HubProcess(*args, api=True, log_dir=tmp_path) as hub:
        hub.wait_ready()
        path = f"/sse/news?token={READER}"
        stream, _ = await subscribed(hub, path, Origin="https://app.example.com")
        assert stream.headers["access-control-allow-origin"] == "https://app.example.com"
        await stream.close()
        refused = await open_sse(hub.api_port, path, {"Origin": "https://evil.example"})
        assert refused.status == 403 and "--allowed-origins" in refused.headers["body"]


async def test_idle_streams_get_keepalive_comments(sse_hub: HubProcess) -> None:
    """A comment every --sse-keepalive-s keeps proxies from cutting an idle stream."""
    stream, _ = await subscribed(sse_hub, f"/sse/news?token={READER}")
    with pytest.raises(TimeoutError):
        await stream.next(timeout=2)
    assert stream.comments.count("keepalive") >= 2, stream.comments
    await stream.close()


async def test_a_slow_reader_is_cut_off_and_others_are_not(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    """A reader that never reads is cut off once its unsent bytes pass the bound (so the
    hub's memory stays bounded); a reader on the same channel gets every message."""
    args = hub_args(own_redis.url, "--max-buffered-bytes", "65536")
    with HubProcess(*args, api=True, log_dir=tmp_path) as hub:
        hub.wait_ready()
        stuck = await open_sse(hub.api_port, f"/sse/news?token={READER}", rcvbuf=4096)
        assert stuck.status == 200
        reader, _ = await subscribed(hub, f"/sse/news?token={READER}")
        filler = "x" * 4000
        # 8 MB: far past the 64 KiB bound and what the kernel's socket buffers can hold.
        num, per_batch = 2000, 10

        def publish_all() -> None:
            for start in range(0, num, per_batch):
                batch = [
                    {"channel": "news", "data": {"n": n, "filler": filler}}
                    for n in range(start, start + per_batch)
                ]
                post(hub, "/api/publish", {"messages": batch}, API_KEY)

        publisher = asyncio.create_task(asyncio.to_thread(publish_all))
        got = [event.json["data"]["n"] for event in await reader.take(num, timeout=60)]
        await publisher
        assert count(got, range(num)).is_exact, count(got, range(num))
        assert "closing a slow consumer" in hub.output()
        # The stuck reader's connection was cut: reading it all ends in EOF, not in the
        # 200 messages.
        async with asyncio.timeout(t(10)):
            data = await stuck.reader.read()  # to EOF
        assert data.count(b"\nid: ") < num
        await reader.close()
        await stuck.close()


async def test_shutdown_ends_every_stream_cleanly(sse_hub: HubProcess) -> None:
    """SIGTERM ends each stream with the chunked body's last chunk, at once, and the hub
    exits 0."""
    stream, _ = await subscribed(sse_hub, f"/sse/news?token={READER}")
    sse_hub.signal(signal.SIGTERM)
    assert await stream.next(timeout=10) is None
    assert stream.is_ended
    assert sse_hub.proc.wait(t(15)) == 0
    assert "Traceback" not in sse_hub.output()


async def test_a_reader_resumes_on_another_instance(tmp_path: Path, own_redis: RedisServer) -> None:
    """Killed mid-stream, the reader's instance is gone; it resumes on another with its
    Last-Event-ID: 0 lost, 0 duplicated, while numbered messages keep flowing."""
    hubs = [HubProcess(*hub_args(own_redis.url), api=True, log_dir=tmp_path) for _ in range(2)]
    try:
        for hub in hubs:
            hub.wait_ready()
        a, b = hubs
        stream, _ = await subscribed(a, f"/sse/news?token={READER}")
        got: list[int] = []
        last_id = None
        for n in range(0, 20):
            publish(b, "news", n)
        for event in await stream.take(10):
            got.append(event.json["data"]["n"])
            last_id = event.id
        a.proc.kill()
        a.proc.wait(t(10))
        for n in range(20, 40):
            publish(b, "news", n)
        assert last_id is not None
        stream, info = await subscribed(
            b, f"/sse/news?token={READER}", **{"Last-Event-ID": last_id}
        )
        assert info["recovered"] is True
        got += [e.json["data"]["n"] for e in await stream.take(30)]
        counts = count(got, range(40))
        assert counts.is_exact, counts
        assert not counts.lost and not counts.duplicated
        await stream.close()
    finally:
        for hub in hubs:
            hub.stop()
