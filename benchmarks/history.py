"""What history costs: publishes through the history script against plain PUBLISHes, and the
fan-out of a history channel against a plain one. Results go in docs/benchmarks.md.

    python benchmarks/history.py publish --repeat 3     # publishes/s and Redis CPU per publish
    python benchmarks/history.py fanout --repeat 3      # max sustained fan-out to 1,000
    python benchmarks/history.py capacity --repeat 3    # fan-out at --rate max, zero loss

``publish`` drives hub's own Redis broker (the pipelined publish connection) in this process
against a fresh redis-server, so it measures exactly the path a hub uses; Redis's CPU comes
from INFO cpu before and after. ``fanout`` runs ``targets.py``'s max-sustained search (p99
under 100 ms, zero loss) against two hub instances with and without ``--history-size``.
Run nothing else heavy meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from targets import bench, hubs, max_sustained, redis_server, urls

from hub.brokers import BrokerOptions
from hub.brokers.redis import RedisBroker
from hub.core.envelope import encode_envelope
from hub.core.namespaces import ChannelOptions

HISTORY = ChannelOptions(history_size=1000, history_ttl_s=300)
HISTORY_FLAGS = ("--history-size", "1000", "--history-ttl-s", "300")


class _Sink:
    def on_messages(self, batch: object) -> None:
        pass

    def on_resubscribed(self, channels: object) -> None:
        pass


def redis_cpu_s(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def publish_run(url: str, n: int, history: ChannelOptions | None) -> dict[str, Any]:
    broker = RedisBroker(url=url, options=BrokerOptions(prefix=f"bench{time.monotonic_ns()}:"))
    await broker.start(_Sink())
    while not broker.is_ready:  # noqa: ASYNC110 - a benchmark polls, on purpose
        await asyncio.sleep(0.01)
    client = redis.Redis.from_url(url)
    payload = encode_envelope(b"x" * 64)
    cpu0, started = redis_cpu_s(client), time.perf_counter()
    sent = 0
    while sent < n:
        # A loop turn's worth: everything published in one turn leaves in one write.
        for _ in range(min(500, n - sent)):
            broker.publish("chan", payload, history)
        sent = min(n, sent + 500)
        while broker.stats.num_published < sent - 5000:  # noqa: ASYNC110
            await asyncio.sleep(0)
        await asyncio.sleep(0)
    while broker.stats.num_published < n:  # noqa: ASYNC110
        await asyncio.sleep(0.001)
    wall = time.perf_counter() - started
    cpu = redis_cpu_s(client) - cpu0
    await broker.close()
    client.close()
    return {
        "publishes_per_s": round(n / wall),
        "redis_cpu_us_per_publish": round(cpu / n * 1e6, 2),
    }


def target_publish(n: int) -> dict[str, Any]:
    with redis_server() as url:
        plain = asyncio.run(publish_run(url, n, None))
        history = asyncio.run(publish_run(url, n, HISTORY))
    return {
        "target": "publish",
        "messages": n,
        "plain": plain,
        "history": history,
        "throughput_ratio": round(history["publishes_per_s"] / plain["publishes_per_s"], 3),
        "cpu_ratio": round(
            history["redis_cpu_us_per_publish"] / plain["redis_cpu_us_per_publish"], 2
        ),
    }


def target_fanout(seconds: float) -> dict[str, Any]:
    flags = ("--workers", "1")
    with redis_server() as url, hubs(2, *flags, redis_url=url) as pair:
        plain = max_sustained(pair, seconds)
    history_flags = (*flags, *HISTORY_FLAGS)
    with redis_server() as url, hubs(2, *history_flags, redis_url=url) as pair:
        history = max_sustained(pair, seconds)
    ratio = (
        history["deliveries_per_s"] / plain["deliveries_per_s"]
        if plain["deliveries_per_s"]
        else None
    )
    return {"target": "fanout", "plain": plain, "history": history, "ratio": ratio}


def capacity_run(flags: tuple[str, ...]) -> dict[str, Any]:
    with redis_server() as url, hubs(2, "--workers", "1", *flags, redis_url=url) as pair:
        report = bench(
            "fanout", *urls(pair), "-n", "1000", "-p", "2", "--rate", "max", "--window", "64",
            "-s", "90", "-d", "8", "--procs", "2", "--drain-timeout", "5",
        )  # fmt: skip
    m = report["messages"]
    return {"deliveries_per_s": m["recv_per_s"], "lost": m["lost"], "duplicates": m["duplicates"]}


def target_capacity() -> dict[str, Any]:
    """Deliveries/s at saturation (publishers windowed on their own echoes): what the hubs
    can carry, whatever the load generator's latency tail."""
    plain, history = capacity_run(()), capacity_run(HISTORY_FLAGS)
    ratio = history["deliveries_per_s"] / plain["deliveries_per_s"]
    return {"target": "capacity", "plain": plain, "history": history, "ratio": ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=("publish", "fanout", "capacity"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("-n", type=int, default=50_000, help="publishes per run (publish)")
    parser.add_argument("--seconds", type=float, default=5.0, help="each fan-out run (fanout)")
    args = parser.parse_args()
    results = []
    for _ in range(args.repeat):
        if args.target == "publish":
            res = target_publish(args.n)
        elif args.target == "fanout":
            res = target_fanout(args.seconds)
        else:
            res = target_capacity()
        print(json.dumps(res), flush=True)
        results.append(res)
    ratio_key = "throughput_ratio" if args.target == "publish" else "ratio"
    summary: dict[str, Any] = {ratio_key: statistics.median(r[ratio_key] for r in results)}
    if args.target == "publish":
        summary["cpu_ratio"] = statistics.median(r["cpu_ratio"] for r in results)
        for mode in ("plain", "history"):
            for key in ("publishes_per_s", "redis_cpu_us_per_publish"):
                summary[f"{mode}_{key}"] = statistics.median(r[mode][key] for r in results)
    else:
        for mode in ("plain", "history"):
            summary[f"{mode}_deliveries_per_s"] = statistics.median(
                r[mode]["deliveries_per_s"] for r in results
            )
    print(json.dumps({"median": summary}))


if __name__ == "__main__":
    main()
