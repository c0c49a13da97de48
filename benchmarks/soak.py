"""A soak: mixed traffic over two hub instances for many minutes, with faults injected, counting
every message per subscriber and sampling memory. Not part of the default test run (it takes
at least ten minutes); docs/soak.md has the figures of the last run.

    python benchmarks/soak.py --minutes 10 [--channels 4] [--readers 8] [--rate 50]

Set-up: a redis-server with AOF (fsync always); instance A (`hub serve --workers 2`) and
instance B (`--workers 1`), sharing it, every channel with history. Publishers send numbered
messages to each channel through B at a steady rate. Readers subscribe through A (hub.v1),
recover from their position whenever their connection drops, and fall back to B. Every
fault interval, the next fault of the cycle hits:

1. ``CLIENT KILL TYPE pubsub``: every hub's subscription drops (server-side gap repair);
2. a SIGKILL of one of A's workers (the supervisor restarts it; its clients recover);
3. a redis-server kill and restart (the hubs buffer, reconnect, repair; clients recover);
4. a subscribe storm on B, where the publishers publish: clients subscribe to and leave
   hundreds of presence channels with join/leave events, over and over; nobody else's
   publish may be rejected for it;
5. replays to readers that never read: raw sockets with a 4 KB receive buffer recover every
   channel from offset 0 on A and read nothing; the hub must hold no more for them than
   ``--max-buffered-bytes`` each, and drop them.

At the end it prints, per reader, the messages lost, duplicated and reordered, and the RSS of
every hub process over time, as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.counting import Reader, count, publish_numbered  # noqa: E402
from support.processes import HubProcess, RedisServer  # noqa: E402
from support.ws import never_reading_subscriber  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

#: Presence channels of the storm: every join and leave is written and announced.
STORM_CONFIG = """
[[namespaces]]
pattern = "storm.*"
presence = true
join_leave = true
"""


async def subscribe_storm(url: str, clients: int = 10, channels: int = 300, rounds: int = 3) -> int:
    """Clients that subscribe to ``channels`` presence channels with join/leave and leave them
    again, ``rounds`` times; return the refusals they were answered (rate limits count)."""

    async def one(i: int) -> int:
        refused = 0
        names = [f"storm.{i}.{c}" for c in range(channels)]
        async with connect(url, subprotocols=["hub.v1"], max_size=None) as ws:
            for r in range(rounds):
                for op in ("subscribe", "unsubscribe"):
                    frame = {"op": op, "channels": names, "id": r, "join_leave": True}
                    await ws.send(json.dumps(frame))
                    while True:
                        answer = json.loads(await asyncio.wait_for(ws.recv(), 30))
                        if answer.get("type") in ("ack", "error"):
                            refused += answer["type"] == "error"
                            break
        return refused

    return sum(await asyncio.gather(*(one(i) for i in range(clients))))


async def replay_hogs(port: int, names: list[str], epochs: dict[str, str], n: int = 6) -> None:
    """``n`` readers that recover every channel from offset 0 and never read, for 20 s."""
    recover = {c: {"epoch": epochs[c], "offset": 0} for c in names}
    frame = {"op": "subscribe", "id": 1, "channels": names, "recover": recover}
    socks = [await asyncio.to_thread(never_reading_subscriber, port, frame) for _ in range(n)]
    await asyncio.sleep(20)
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.close()


async def epochs_of(url: str, names: list[str]) -> dict[str, str]:
    async with connect(url, subprotocols=["hub.v1"]) as ws:
        await ws.send(json.dumps({"op": "subscribe", "channels": names, "id": 1}))
        while True:
            answer = json.loads(await ws.recv())
            if answer.get("type") == "ack":
                return {c: p["epoch"] for c, p in answer["positions"].items()}


def _write_config(logs: Path) -> Path:
    logs.mkdir(parents=True, exist_ok=True)
    config = logs / "soak.toml"
    config.write_text(STORM_CONFIG)
    return config


FAULTS = (
    "client-kill-pubsub",
    "worker-sigkill",
    "redis-restart",
    "subscribe-storm",
    "replay-to-never-readers",
)


def rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _is_worker(pid: int) -> bool:
    """A hub worker (not multiprocessing's resource tracker, also a child)."""
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def hub_pids(hub: HubProcess) -> list[int]:
    """The supervisor and its workers."""
    pids = [hub.proc.pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == hub.proc.pid:
                pids.append(int(entry.name))
    return pids


async def soak(
    minutes: float, channels: int, readers: int, rate: float, fault_s: float
) -> dict[str, Any]:
    total = int(rate * minutes * 60)
    history = ("--history-size", str(total + 10), "--history-ttl-s", "3600")
    recovery = ("--recovery-max-messages", str(total + 10))
    with RedisServer.running("--appendonly", "yes", "--appendfsync", "always") as redis:
        logs = Path(os.environ.get("SOAK_LOG_DIR", "/tmp/hub-soak-logs"))
        config = _write_config(logs)
        common = (
            "--redis", redis.url, "--channel-prefix", "soak:", *history, *recovery,
            "--config", str(config),
        )  # fmt: skip
        with (
            HubProcess(*common, "--workers", "2", log_dir=logs) as a,
            HubProcess(*common, "--workers", "1", log_dir=logs) as b,
        ):
            a.wait_ready(30)
            b.wait_ready(30)
            names = [f"soak.{i}" for i in range(channels)]
            subs = [Reader(names[i % channels]) for i in range(readers)]
            done = lambda r: len(r.numbers) > 0 and r.numbers[-1] >= total - 1  # noqa: E731
            session_s = minutes * 60 + 300
            tasks = [
                asyncio.create_task(
                    r.resume([a.url(), b.url()], until=done, attempts=10_000, timeout=session_s)
                )
                for r in subs
            ]
            await asyncio.sleep(2)
            publishers = [
                asyncio.create_task(publish_numbered(b.url(), name, range(total), rate=rate))
                for name in names
            ]
            epochs = await epochs_of(a.url(), names)
            side_tasks: list[asyncio.Task[Any]] = []
            samples: list[dict[str, Any]] = []
            faults: list[dict[str, Any]] = []
            started = time.monotonic()
            next_fault = started + fault_s
            cycle = 0
            while not all(p.done() for p in publishers):
                await asyncio.sleep(1)
                now = time.monotonic()
                if int(now - started) % 10 == 0:
                    samples.append(
                        {
                            "t_s": round(now - started),
                            "rss": {p: rss(p) for p in hub_pids(a) + hub_pids(b)},
                        }
                    )
                if now >= next_fault:
                    kind = FAULTS[cycle % len(FAULTS)]
                    if kind == "client-kill-pubsub":
                        redis.client().client_kill_filter(_type="pubsub")
                    elif kind == "worker-sigkill":
                        workers = [p for p in hub_pids(a) if _is_worker(p)]
                        if workers:
                            os.kill(workers[(cycle // 3) % len(workers)], signal.SIGKILL)
                    elif kind == "redis-restart":
                        redis.stop()
                        await asyncio.sleep(1)
                        redis.start()
                    elif kind == "subscribe-storm":
                        side_tasks.append(asyncio.create_task(subscribe_storm(b.url())))
                    else:
                        side_tasks.append(asyncio.create_task(replay_hogs(a.port, names, epochs)))
                    faults.append({"t_s": round(now - started), "fault": kind})
                    cycle += 1
                    next_fault = now + fault_s
            await asyncio.gather(*publishers)
            await asyncio.wait_for(asyncio.gather(*tasks), 120)
            side = await asyncio.gather(*side_tasks, return_exceptions=True)
            results = []
            for r in subs:
                c = count(r.numbers, range(total))
                results.append(
                    {
                        "channel": r.channel,
                        "received": len(r.numbers),
                        "lost": len(c.lost),
                        "duplicated": len(c.duplicated),
                        "reordered": c.reordered,
                        "gaps": len(r.gaps),
                        "sessions": len(r.acks),
                    }
                )
            return {
                "minutes": minutes,
                "messages_per_channel": total,
                "channels": channels,
                "readers": results,
                "faults": faults,
                "storm_refusals": [r for r in side if isinstance(r, int)],
                "side_errors": [repr(r) for r in side if isinstance(r, BaseException)],
                "rss_samples": samples,
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--rate", type=float, default=50.0, help="messages/s per channel")
    parser.add_argument("--fault-interval-s", type=float, default=60.0)
    args = parser.parse_args()
    result = asyncio.run(
        soak(args.minutes, args.channels, args.readers, args.rate, args.fault_interval_s)
    )
    print(json.dumps(result))
    worst = max(r["lost"] + r["duplicated"] + r["reordered"] for r in result["readers"])
    sys.exit(1 if worst else 0)


if __name__ == "__main__":
    main()
