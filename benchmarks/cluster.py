"""hub on Redis Cluster against hub on one Redis, in the same run: fan-out and what the
per-partition connections cost.

For each repeat and each backend (one redis-server; a local 3-master Redis Cluster with the
default 32 partitions; the same with ``?partitions=8``), two ``hub serve --workers 1`` start
on it, and then:

- **idle**: for ``--idle`` seconds, the hubs' CPU (the per-partition probes) and memory, and
  the connections each hub process holds in Redis (``CLIENT LIST``, all nodes);
- **fan-out**: ``hub bench fanout`` (1,000 subscribers, 2 publishers, the same settings as
  targets.py) at ``--rate`` messages/s for ``--seconds``: deliveries/s, loss, p50 and p99,
  the hubs' CPU per delivery, and Redis's CPU over all its nodes;
- **many channels**: ``hub bench echo`` with ``--echo-clients`` clients, each on its own
  channel (so spread over every partition and master), each sending as soon as its last
  message came back, for ``--seconds``: round trips/s and their p50 and p99, where the
  writes of one loop turn are split between the partitions.

    python benchmarks/cluster.py --repeat 3 --seconds 10 --rate 100

prints a JSON summary: the medians per backend and their ratios to one Redis.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from cpu_per_delivery import cpu_s  # noqa: E402
from support.cluster import RedisCluster  # noqa: E402
from targets import bench, fanout_run, hubs, redis_server, server_rss, urls  # noqa: E402

BACKENDS = ("redis", "cluster", "cluster-8")


@contextlib.contextmanager
def backend(kind: str) -> Iterator[tuple[str, list[int]]]:
    """(URL, ports of the Redis processes) of a fresh backend."""
    if kind == "redis":
        with redis_server() as url:
            yield url, [int(url.rsplit(":", 1)[1].split("/")[0])]
        return
    with RedisCluster(3) as cluster:
        url = cluster.url + ("?partitions=8" if kind == "cluster-8" else "")
        yield url, list(cluster.ports)


def redis_cpu(ports: list[int]) -> float:
    total = 0.0
    for port in ports:
        info = redis.Redis(port=port).info("cpu")
        total += float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    return total


def hub_connections(ports: list[int]) -> int:
    """Connections named by hub processes, over every Redis process."""
    return sum(
        1
        for port in ports
        for client in redis.Redis(port=port).client_list()
        if client.get("name", "").startswith("hub-")
    )


def echo_run(pair: list[tuple[int, int]], clients: int, seconds: float) -> dict[str, Any]:
    r = bench("echo", *urls(pair), "-n", str(clients), "-d", str(seconds), "--procs", "2")
    m, lat = r["messages"], r["latency_us"]
    return {
        "echo_per_s": m["recv_per_s"],
        "echo_lost": m["lost"],
        "echo_p50_ms": (lat.get("p50") or 0) / 1000,
        "echo_p99_ms": (lat.get("p99") or 0) / 1000,
    }


def one(kind: str, rate: int, seconds: float, idle_s: float, clients: int) -> dict[str, Any]:
    with backend(kind) as (url, ports), hubs(2, "--workers", "1", redis_url=url) as pair:
        pids = [pid for _, pid in pair]
        time.sleep(2)  # every partition connected and subscribed
        cpu0 = sum(cpu_s(p) for p in pids)
        time.sleep(idle_s)
        idle_cpu = (sum(cpu_s(p) for p in pids) - cpu0) / idle_s / len(pids)
        connections = hub_connections(ports) / len(pids)
        rss = server_rss(pids) / len(pids)
        cpu0, rcpu0 = sum(cpu_s(p) for p in pids), redis_cpu(ports)
        run = fanout_run(pair, rate, seconds)
        hub_cpu = sum(cpu_s(p) for p in pids) - cpu0
        redis_cpu_s = redis_cpu(ports) - rcpu0
        cpu0, rcpu0 = sum(cpu_s(p) for p in pids), redis_cpu(ports)
        echo = echo_run(pair, clients, seconds)
        trips = echo["echo_per_s"] * seconds
        echo["echo_hub_us_per_trip"] = (sum(cpu_s(p) for p in pids) - cpu0) / trips * 1e6
        echo["echo_redis_us_per_trip"] = (redis_cpu(ports) - rcpu0) / trips * 1e6
    deliveries = run["deliveries_per_s"] * seconds
    return {
        "backend": kind,
        **run,
        "hub_us_per_delivery": hub_cpu / deliveries * 1e6 if deliveries else None,
        "redis_cpu_share": redis_cpu_s / seconds,
        "idle_cpu_share_per_process": idle_cpu,
        "connections_per_process": connections,
        "rss_mb_per_process": rss / 2**20,
        **echo,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--idle", type=float, default=5)
    parser.add_argument("--echo-clients", type=int, default=200)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in BACKENDS}
    for i in range(args.repeat):
        for kind in BACKENDS:  # interleaved, so drift hits every backend alike
            run = one(kind, args.rate, args.seconds, args.idle, args.echo_clients)
            runs[kind].append(run)
            print(f"run {i + 1} {kind}: {json.dumps(run)}", file=sys.stderr, flush=True)
    keys = [k for k, v in runs["redis"][0].items() if isinstance(v, int | float) and k != "rate"]
    medians = {
        kind: {k: statistics.median(r[k] for r in rs if r[k] is not None) for k in keys}
        for kind, rs in runs.items()
    }
    ratios = {
        kind: {
            k: round(medians[kind][k] / medians["redis"][k], 3) if medians["redis"][k] else None
            for k in keys
        }
        for kind in BACKENDS[1:]
    }
    print(
        json.dumps(
            {"settings": vars(args), "medians": medians, "ratios": ratios, "runs": runs}, indent=1
        )
    )


if __name__ == "__main__":
    main()
