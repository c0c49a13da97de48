"""Numbered traffic across lab hosts: hub.v1 publishers on some hubs, a counting Reader per
channel on every hub (support.counting), run in one client host's thread; and when a hub's
/readyz changed (support.ops.readiness_log)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from support.counting import Reader, publish_round_robin
from support.hosts import Host, HostThread
from support.processes import HubProcess
from support.waits import async_wait_until, t

__all__ = [
    "FROM_HUB1",
    "FROM_HUB2",
    "RATE",
    "first_change",
    "history_hubs",
    "numbered_traffic",
    "start_traffic",
    "where",
]

#: Channels under ``hist.`` keep history; the others are plain.
HISTORY_CONFIG = """
[[namespaces]]
pattern = "hist.*"
history_size = 5000
history_ttl_s = 300
"""
#: What the two hubs' publishers send: a history and a plain channel each.
FROM_HUB1, FROM_HUB2 = ("hist.a", "plain.a"), ("hist.b", "plain.b")
RATE = 80.0  # per publisher, over its two channels: 40/s per channel


def where(hub: HubProcess) -> str:
    """The lab host a hub runs on, by name."""
    assert hub.host is not None, "a lab hub (HubProcess(host=...))"
    return hub.host.name


async def numbered_traffic(
    publishers: Mapping[HubProcess, Sequence[str]],
    readers_on: Sequence[HubProcess],
    *,
    total: int,
    rate: float,
    started: threading.Event,
    timeout: float = 90,
) -> dict[tuple[str, str], Reader]:
    """Subscribe a Reader to every published channel on every hub of ``readers_on``; once
    all are acked, set ``started`` and publish ``{"n": 0..total-1}`` through each hub to its
    channels in turn (``rate`` per publisher). Each Reader stays on its one connection until
    it has the last number. Keyed by (channel, the reader's hub host)."""
    readers = {
        (channel, where(hub)): Reader(channel)
        for channels in publishers.values()
        for channel in channels
        for hub in readers_on
    }
    by_host = {where(hub): hub for hub in readers_on}

    def done(reader: Reader) -> bool:
        return bool(reader.numbers) and reader.numbers[-1] == total - 1

    reading = [
        asyncio.create_task(
            reader.resume([by_host[host].url()], until=done, attempts=1, timeout=timeout)
        )
        for (_, host), reader in readers.items()
    ]
    await async_wait_until(lambda: all(r.acks for r in readers.values()), 20, "every ack")
    started.set()
    await asyncio.gather(
        *(
            publish_round_robin(hub.url(), channels, range(total), rate=rate)
            for hub, channels in publishers.items()
        ),
        *reading,
    )
    return readers


def history_hubs(hosts: Sequence[Host], redis_url: str, tmp_path: Path) -> list[HubProcess]:
    """A one-worker hub on each host, on ``redis_url``, with history on ``hist.*``."""
    config = tmp_path / "hub.toml"
    config.write_text(HISTORY_CONFIG)
    args = ("--redis", redis_url, "--workers", "1", "--config", str(config))
    return [HubProcess(*args, host=host, log_dir=tmp_path) for host in hosts]


def start_traffic(
    clients: Host,
    publishers: Mapping[HubProcess, Sequence[str]],
    readers_on: Sequence[HubProcess],
    *,
    total: int,
    rate: float = RATE,
) -> tuple[HostThread[dict[tuple[str, str], Reader]], float]:
    """:func:`numbered_traffic` in a thread on ``clients``, once it publishes: the thread
    (its result: the Readers) and when publishing started."""
    started = threading.Event()
    traffic = numbered_traffic(publishers, readers_on, total=total, rate=rate, started=started)
    runner = clients.thread(lambda: asyncio.run(traffic))
    if not started.wait(t(20)):
        raise AssertionError("the subscribers never got their acks")
    return runner, time.monotonic()


def first_change(
    log: Sequence[tuple[float, int]], since: float, to: int | None = None
) -> float | None:
    """Seconds from ``since`` to the first /readyz status in ``log`` that differs from the
    last one before ``since`` (200 if none), or with ``to``, that is ``to``; None if never."""
    before = [status for at, status in log if at < since]
    first = before[-1] if before else 200
    for at, status in log:
        if at >= since and (status == to if to is not None else status != first):
            return at - since
    return None
