"""Nothing one client (or one stray PUBLISH) does may cost another: replays within the
per-connection bound, forged offsets refused, internal events only to those who asked, and
SSE ids that never run ahead. Over real hub and redis-server processes, bounded in count and
time; each checks the hub's log for tracebacks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from support import HubProcess, RedisServer, recv_n, scrape, t, total
from support.counting import count, history_publisher
from support.sse import open_sse
from support.v1 import v1_hub
from support.ws import never_reading_subscriber
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

HISTORY = ("--history-size", "1000", "--history-ttl-s", "300")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def subscribe(ws: ClientConnection, **fields: Any) -> dict[str, Any]:
    """Send a subscribe and return its ack (deliveries before it are not expected)."""
    await ws.send(json.dumps({"op": "subscribe", "id": 1, **fields}))
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), t(10)))
        if frame.get("type") in ("ack", "error"):
            return frame


def no_traceback(hub: HubProcess) -> None:
    assert "Traceback" not in hub.output(), hub.output()[-3000:]


async def test_a_recovery_replay_stays_within_the_connection_bound(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A recovery larger than --max-buffered-bytes goes in rounds: each writes what fits, in
    order, then closes with 4008, and the client recovers the rest from where it got to,
    with nothing lost or doubled. Clients that recover everything and never read cost the
    hub no more than their bound: its memory stays flat, and a neighbour is served."""
    channels = [f"big.{i}" for i in range(8)]
    body = "x" * 4000
    publisher = history_publisher(redis_server.url)
    for channel in channels:
        for i in range(250):  # 1 MB of history per channel, 8 MB in all
            publisher.publish(channel, text=f"{i}:{body}")
    bound = 1 << 20
    with v1_hub(tmp_path, redis_server.url, *HISTORY, "--max-buffered-bytes", str(bound)) as hub:
        async with connect(hub.url(), subprotocols=["hub.v1"]) as first:
            ack = await subscribe(first, channels=channels)
        positions = {c: {"epoch": ack["positions"][c]["epoch"], "offset": 0} for c in channels}
        received: dict[str, list[int]] = {c: [] for c in channels}
        rounds = 0
        while any(p["offset"] < 250 for p in positions.values()) and rounds < 30:
            rounds += 1
            async with connect(hub.url(), subprotocols=["hub.v1"], max_size=None) as ws:
                ack = await subscribe(ws, channels=channels, recover=positions)
                assert all(ack["positions"][c]["recovered"] for c in channels), ack
                try:
                    async for raw in ws:
                        frame = json.loads(raw)
                        assert frame["type"] == "message", frame
                        received[frame["channel"]].append(frame["offset"])
                        positions[frame["channel"]]["offset"] = frame["offset"]
                        if all(p["offset"] == 250 for p in positions.values()):
                            break
                except ConnectionClosed as exc:
                    assert exc.rcvd is not None and exc.rcvd.code == 4008, exc
        assert rounds >= 8, f"8 MB came back in {rounds} rounds under a 1 MiB bound"
        for channel in channels:
            counts = count(received[channel], range(1, 251))
            assert counts.is_exact, f"{channel}: {counts}"
        recover = {c: {"epoch": p["epoch"], "offset": 0} for c, p in positions.items()}
        rss_before = rss_bytes(hub.proc.pid)
        hogs = [
            never_reading_subscriber(
                hub.port, {"op": "subscribe", "id": 1, "channels": channels, "recover": recover}
            )
            for _ in range(6)
        ]
        try:
            await asyncio.sleep(t(2))
            grown = rss_bytes(hub.proc.pid) - rss_before
            # 6 clients with 8 MB each would be 48 MB; each may queue 1 MiB at most.
            assert grown < 20 * 1024 * 1024, f"the hub grew by {grown / 1e6:.1f} MB"
            async with connect(hub.url("calm")) as neighbour:
                await neighbour.send("still here")
                assert await recv_n(neighbour, 1) == ["still here"]
        finally:
            for sock in hogs:
                sock.close()
        no_traceback(hub)


async def test_a_history_answer_larger_than_the_bound_is_refused(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A history request whose answer passes --max-buffered-bytes gets too_large, and the
    connection goes on."""
    publisher = history_publisher(redis_server.url)
    for i in range(40):
        publisher.publish("log.1", text=f"{i}:" + "y" * 4000)
    with v1_hub(tmp_path, redis_server.url, *HISTORY, "--max-buffered-bytes", "65536") as hub:
        async with connect(hub.url(), subprotocols=["hub.v1"]) as ws:
            await ws.send(json.dumps({"op": "history", "channel": "log.1", "limit": 40, "id": 5}))
            refused = json.loads(await ws.recv())
            assert refused["code"] == "too_large" and refused["id"] == 5
            assert "limit" in refused["message"]
            await ws.send(json.dumps({"op": "history", "channel": "log.1", "limit": 2, "id": 6}))
            answer = json.loads(await ws.recv())
            assert answer["type"] == "history" and len(answer["messages"]) == 2
        no_traceback(hub)


async def test_a_forged_offset_does_not_silence_a_history_channel(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A plain PUBLISH that carries an offset the history script never assigned is dropped
    and counted; every real message still reaches old and new subscribers, once, in order,
    with no gap."""
    with v1_hub(tmp_path, redis_server.url, *HISTORY) as hub:
        async with connect(hub.url(), subprotocols=["hub.v1"]) as first:
            ack = await subscribe(first, channels=["room.f"])
            epoch = ack["positions"]["room.f"]["epoch"]
            async with connect(hub.url(), subprotocols=["hub.v1"]) as sender:
                for i in (1, 2):
                    await sender.send(json.dumps({"op": "publish", "channel": "room.f", "data": i}))
                forged = b"\xffhbo1000000:" + epoch.encode() + b'\n\xffhbj{"forged":true}'
                redis_server.client().publish("hub:room.f", forged)
                await asyncio.sleep(t(0.5))
                for i in range(3, 11):
                    await sender.send(json.dumps({"op": "publish", "channel": "room.f", "data": i}))
                frames = [json.loads(f) for f in await recv_n(first, 10, timeout=15)]
                frames = [f for f in frames if f.get("type") != "ack"]
                # the acks of the sender's publishes go to the sender, not here
                assert all(f["type"] == "message" for f in frames), frames
                counts = count([f["offset"] for f in frames], range(1, 11))
                assert counts.is_exact, str(counts)
                async with connect(hub.url(), subprotocols=["hub.v1"]) as late:
                    await subscribe(late, channels=["room.f"])
                    await sender.send(
                        json.dumps({"op": "publish", "channel": "room.f", "data": 11})
                    )
                    [frame] = [json.loads(f) for f in await recv_n(late, 1)]
                    assert frame["offset"] == 11 and frame["data"] == 11
        samples = await scrape(hub.port)
        assert total(samples, "hub_history_forged_total") == 1
        assert "whose offsets the history never assigned" in hub.output()
        no_traceback(hub)


async def test_presence_events_never_reach_a_hub_that_does_not_keep_them(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A hub without --presence that shares Redis with one that has it sends its clients no
    join or leave event: not to hub.v1 clients, not to raw clients, compressed or not."""
    presence = ("--presence", "--join-leave")
    with (
        v1_hub(tmp_path / "p", redis_server.url, *presence) as with_presence,
        v1_hub(tmp_path / "q", redis_server.url) as without,
    ):
        async with (
            connect(without.url(), subprotocols=["hub.v1"]) as v1,
            connect(without.url("room.e"), compression="deflate") as compressed,
            connect(without.url("room.e"), compression=None) as plain,
        ):
            await subscribe(v1, channels=["room.e"], join_leave=True)
            async with connect(with_presence.url(), subprotocols=["hub.v1"]) as joiner:
                await subscribe(joiner, channels=["room.e"], join_leave=True)
                await asyncio.sleep(t(0.3))
                await joiner.send(
                    json.dumps({"op": "publish", "channel": "room.e", "text": "after"})
                )
                [first] = [json.loads(f) for f in await recv_n(v1, 1)]
                assert first["type"] == "message" and first["text"] == "after", first
                assert await recv_n(compressed, 1) == ["after"]
                assert await recv_n(plain, 1) == ["after"]
        no_traceback(without)


async def test_an_sse_recovery_announces_the_position_it_resumes_from(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """After Last-Event-ID <epoch>:6 the subscribed event's id is <epoch>:6, not the top, so
    a reader cut off right after it resumes where it was; the replay carries 7, 8, 9."""
    publisher = history_publisher(redis_server.url)
    for i in range(1, 10):
        publisher.publish("feed", data={"n": i})
    with v1_hub(tmp_path, redis_server.url, *HISTORY, api=True) as hub:
        async with connect(hub.url(), subprotocols=["hub.v1"]) as ws:
            epoch = (await subscribe(ws, channels=["feed"]))["positions"]["feed"]["epoch"]
        stream = await open_sse(hub.api_port, "/sse/feed", {"Last-Event-ID": f"{epoch}:6"})
        try:
            subscribed, *replay = await stream.take(4)
            assert subscribed.event == "subscribed" and subscribed.json["recovered"] is True
            assert subscribed.id == f"{epoch}:6", subscribed.id
            assert [e.id for e in replay] == [f"{epoch}:{n}" for n in (7, 8, 9)]
        finally:
            await stream.close()
        no_traceback(hub)
