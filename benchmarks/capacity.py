"""The unit costs behind docs/capacity.md, measured on this machine, and a check of the model.

    python benchmarks/capacity.py costs --repeat 3   # each unit cost, medians of the runs
    python benchmarks/capacity.py check --repeat 3   # a 3-process run: predicted vs measured CPU
    python benchmarks/capacity.py idle-check --scale FILE  # many idle sockets: predicted vs a
                                                         # targets.py scale run's JSON lines

``costs`` measures, each against fresh real processes:

- ``conn_bytes``: a hub's memory per idle connection (``hub bench conns`` with --server-pid);
- ``idle_cpu_percent`` and ``redis_idle_cpu_percent``: a connected hub process's own CPU with
  no clients (probe, timers), and Redis's per connected hub process;
- ``c_connect_us``: hub CPU per connection opened and closed (the handshake);
- ``c_delivery_ns``, ``c_message_ns`` and ``c_ingress_ns``: hub CPU per delivery, per Redis
  message received by a hub process that has subscribers to it (read, decode, one fan-out
  call), and per message published by a client (once, at its process). Three fan-out runs
  (``CALIBRATION``) solved as three linear equations in the three unknowns: hub CPU =
  messages * c_ingress + messages * processes * c_message + deliveries * c_delivery;
- ``process_rss_bytes``: a hub process's memory with no clients;
- ``idle_socket_bytes`` and ``idle_socket_cpu_ns_per_s``: a hub worker's memory and CPU per
  idle socket, held long enough for every socket to be pinged twice (keepalive at the default
  interval, the metrics' sync, /stats and /metrics asked every 5 s as a dashboard and
  Prometheus would), over one worker's worth of sockets (``IDLE_SOCKETS``);
- ``redis_publish_us`` and ``redis_history_publish_us``: Redis CPU per PUBLISH and per publish
  through the history script, sent by hub's own pipelined publisher;
- ``redis_out_us``: Redis CPU per message per subscribed connection (each hub process holds
  one), the slope between 1 and 8 subscribed connections;
- ``redis_paced_publish_us`` and ``redis_paced_out_us``: the same two, with messages one at a
  time at 1,000/s rather than in pipelines: below saturation, every message costs Redis a read
  and a write per subscribed process, many times the pipelined figure. The check uses these.

``idle-check`` predicts the RSS and the idle CPU of a ``targets.py scale`` run (its sockets,
its workers) from ``process_rss_bytes``, ``idle_socket_bytes``, ``idle_cpu_percent`` and
``idle_socket_cpu_ns_per_s``, and prints each run's measured over predicted.

``check`` predicts the hub and Redis CPU of two runs that none of the costs came from (three hub
processes; 300 subscribers at 200 msg/s, and 30 at 1,500 msg/s) and measures them. Costs come
from the last ``costs`` run (``--costs FILE``, default benchmarks/capacity-costs.json). Run
nothing else heavy meanwhile.
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

from cpu_per_delivery import cpu_s
from history import HISTORY, publish_run, redis_cpu_s
from targets import EndpointPoller, bench, hubs, redis_server, server_rss, urls

from hub.brokers import BrokerOptions
from hub.brokers.redis import RedisBroker
from hub.core.envelope import encode_envelope

COSTS = Path(__file__).resolve().parent / "capacity-costs.json"
PACED_N, PACED_RATE = 5000, 1000.0
#: The calibration runs: (hub processes, subscribers, msg/s). Deliveries dominate the first;
#: messages the others, whose processes differ, which separates a message's ingress (once, at
#: its publisher's process) from its cost at each process that has subscribers to it.
CALIBRATION = [(2, 1000, 150), (2, 2, 1500), (1, 2, 1500)]


def fanout_cpu(procs: int, subscribers: int, rate: int, seconds: float) -> dict[str, Any]:
    """A fixed-rate fan-out against ``procs`` hub processes: hub and Redis CPU, and counts."""
    with redis_server() as url, hubs(procs, "--workers", "1", redis_url=url) as servers:
        client = redis.Redis.from_url(url)
        pids = [pid for _, pid in servers]
        hub0, redis0, wall0 = sum(cpu_s(p) for p in pids), redis_cpu_s(client), time.monotonic()
        report = bench(
            "fanout", *urls(servers), "-n", str(subscribers), "-p", "2", "--rate", str(rate),
            "-s", "90", "-d", str(seconds), "--procs", "2", "--drain-timeout", "5",
        )  # fmt: skip
        hub_cpu, redis_cpu = sum(cpu_s(p) for p in pids) - hub0, redis_cpu_s(client) - redis0
        wall = time.monotonic() - wall0
        client.close()
    m = report["messages"]
    return {
        "procs": procs,
        "connections": report["connections"]["connected"],
        "wall_s": round(wall, 3),
        "messages": m["sent"],
        "deliveries": m["received"],
        "lost": m["lost"],
        "hub_cpu_s": round(hub_cpu, 3),
        "redis_cpu_s": round(redis_cpu, 3),
    }


def idle_cpu(seconds: float) -> tuple[float, float, int]:
    """CPU per second with no clients, of a connected hub process (probe, metrics, timers)
    and of Redis per hub process connected to it; and a hub process's RSS."""
    with redis_server() as url, hubs(2, "--workers", "1", redis_url=url) as servers:
        client = redis.Redis.from_url(url)
        pids = [pid for _, pid in servers]
        before, redis0 = sum(cpu_s(p) for p in pids), redis_cpu_s(client)
        time.sleep(seconds)
        hub = (sum(cpu_s(p) for p in pids) - before) / 2 / seconds
        redis_idle = (redis_cpu_s(client) - redis0) / 2 / seconds
        client.close()
        return hub, redis_idle, server_rss(pids) // 2


#: Idle sockets held by the one worker of ``idle_socket_costs``: most of what one worker holds.
IDLE_SOCKETS = 15_000
#: How long they are held once connected: two keepalive intervals (20 s) and a bit.
IDLE_HOLD_S = 45.0


def idle_socket_costs() -> tuple[float, float]:
    """(bytes, CPU ns per second) per idle socket of one hub worker holding IDLE_SOCKETS."""
    with hubs(1, "--workers", "1") as hub:
        port, pid = hub[0]
        with EndpointPoller(port, pid) as poller:
            r = bench(
                "conns", *urls(hub), "-n", str(IDLE_SOCKETS), "--procs", "1",
                "--hold", str(IDLE_HOLD_S), "--server-pid", str(pid),
            )  # fmt: skip
    idle = poller.summary()
    connected = r["connections"]["connected"]
    cpu_ns_per_s = idle["idle_cpu_percent"] / 100 * 1e9 / connected
    return r["server_memory"]["per_connection_bytes"], cpu_ns_per_s


def solve_hub_costs(
    runs: list[dict[str, Any]], idle: float, connect: float
) -> tuple[float, float, float]:
    """(c_ingress, c_message, c_delivery) in seconds, from three runs, less their idle and
    handshake CPU: cpu - idle - connects = m·c_in + m·P·c_m + d·c_d (Cramer's rule)."""
    rows = [[r["messages"], r["messages"] * r["procs"], r["deliveries"]] for r in runs]
    ys = [
        r["hub_cpu_s"] - idle * r["procs"] * r["wall_s"] - connect * r["connections"] for r in runs
    ]

    def det(m: list[list[float]]) -> float:
        return (
            m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
        )

    whole = det(rows)
    out = []
    for col in range(3):
        m = [[ys[i] if j == col else rows[i][j] for j in range(3)] for i in range(3)]
        out.append(det(m) / whole)
    return out[0], out[1], out[2]


async def redis_out_run(url: str, subscribers: int, n: int, rate: float = 0) -> float:
    """Redis CPU seconds for ``n`` publishes to ``subscribers`` subscribed connections, in
    pipelines of 500 or, with ``rate``, one at a time at that rate (each its own read and
    writes in Redis: the regime of a hub below saturation)."""
    channel, payload = f"cap{time.monotonic_ns()}", encode_envelope(b"x" * 64)
    frame = len(b"*3\r\n$7\r\nmessage\r\n") + len(f"${len(channel)}\r\n{channel}\r\n")
    frame += len(f"${len(payload)}\r\n\r\n") + len(payload)
    host, port = url.removeprefix("redis://").split(":")
    readers = []
    for _ in range(subscribers):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"SUBSCRIBE {channel}\r\n".encode())
        await reader.readuntil(b":1\r\n")  # the subscribe confirmation
        readers.append((reader, writer))

    async def drain(reader: asyncio.StreamReader) -> None:
        got = 0
        while got < n * frame:
            got += len(await reader.read(1 << 20))

    broker = RedisBroker(url=url, options=BrokerOptions(prefix=""))
    await broker.start(_Sink())
    while not broker.is_ready:  # noqa: ASYNC110 - a benchmark polls, on purpose
        await asyncio.sleep(0.01)
    client = redis.Redis.from_url(url)
    before = redis_cpu_s(client)
    tasks = [asyncio.create_task(drain(r)) for r, _ in readers]
    step, started = (1 if rate else 500), time.monotonic()
    for sent in range(0, n, step):
        for _ in range(min(step, n - sent)):
            broker.publish(channel, payload)
        while broker.stats.num_published < sent - 5000:  # noqa: ASYNC110 - as publish_run
            await asyncio.sleep(0)
        await asyncio.sleep(max(0, started + sent / rate - time.monotonic()) if rate else 0)
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    used = redis_cpu_s(client) - before
    await broker.close()
    client.close()
    for _, writer in readers:
        writer.close()
    return used


class _Sink:
    def on_messages(self, batch: object) -> None:
        pass

    def on_resubscribed(self, channels: object) -> None:
        pass


def measure_costs(seconds: float) -> dict[str, Any]:
    with hubs(1, "--workers", "1") as hub:
        before = cpu_s(hub[0][1])
        r = bench("conns", *urls(hub), "-n", "5000", "--hold", "3", "--server-pid", str(hub[0][1]))
        conn_bytes = r["server_memory"]["per_connection_bytes"]
        connect_cpu = (cpu_s(hub[0][1]) - before) / r["connections"]["connected"]
    runs = [fanout_cpu(*shape, seconds) for shape in CALIBRATION]
    idle, redis_idle, rss = idle_cpu(seconds)
    idle_socket_bytes, idle_socket_cpu = idle_socket_costs()
    c_ingress, c_message, c_delivery = solve_hub_costs(runs, idle, connect_cpu)
    n = 50_000
    with redis_server() as url:
        plain = asyncio.run(publish_run(url, n, None))
        history = asyncio.run(publish_run(url, n, HISTORY))
        one = asyncio.run(redis_out_run(url, 1, n))
        eight = asyncio.run(redis_out_run(url, 8, n))
        paced = [asyncio.run(redis_out_run(url, k, PACED_N, PACED_RATE)) for k in (1, 8)]
    return {
        "conn_bytes": conn_bytes,
        "idle_cpu_percent": round(idle * 100, 3),
        "c_connect_us": round(connect_cpu * 1e6, 1),
        "redis_idle_cpu_percent": round(redis_idle * 100, 3),
        "c_delivery_ns": round(c_delivery * 1e9, 1),
        "c_message_ns": round(c_message * 1e9, 1),
        "c_ingress_ns": round(c_ingress * 1e9, 1),
        "process_rss_bytes": rss,
        "idle_socket_bytes": idle_socket_bytes,
        # Less the process's own idle CPU, which idle_cpu_percent counts once per process.
        "idle_socket_cpu_ns_per_s": round(max(0.0, idle_socket_cpu - idle * 1e9 / IDLE_SOCKETS), 2),
        "redis_publish_us": plain["redis_cpu_us_per_publish"],
        "redis_history_publish_us": history["redis_cpu_us_per_publish"],
        "redis_out_us": round((eight - one) / 7 / n * 1e6, 3),
        "redis_paced_out_us": round((paced[1] - paced[0]) / 7 / PACED_N * 1e6, 3),
        "redis_paced_publish_us": round((paced[0] - (paced[1] - paced[0]) / 7) / PACED_N * 1e6, 3),
        "runs": runs,
    }


def predict(
    costs: dict[str, float],
    procs: int,
    messages: int,
    deliveries: int,
    wall_s: float,
    connections: int,
) -> dict[str, float]:
    """The model of docs/capacity.md: CPU seconds for a run of these totals."""
    hub = messages * procs * costs["c_message_ns"] + deliveries * costs["c_delivery_ns"]
    hub += messages * costs["c_ingress_ns"]
    hub += procs * wall_s * costs["idle_cpu_percent"] / 100 * 1e9
    hub += connections * costs["c_connect_us"] * 1e3
    redis_us = messages * (costs["redis_paced_publish_us"] + procs * costs["redis_paced_out_us"])
    redis_us += procs * wall_s * costs["redis_idle_cpu_percent"] / 100 * 1e6
    return {"hub_cpu_s": hub / 1e9, "redis_cpu_s": redis_us / 1e6}


def predict_idle(costs: dict[str, float], sockets: int, workers: int) -> dict[str, float]:
    """The "many idle sockets" shape of docs/capacity.md: a hub's RSS, and its CPU in percent
    of one core, holding ``sockets`` idle over ``workers`` worker processes."""
    rss = workers * costs["process_rss_bytes"] + sockets * costs["idle_socket_bytes"]
    cpu = workers * costs["idle_cpu_percent"]
    cpu += sockets * costs["idle_socket_cpu_ns_per_s"] / 1e9 * 100
    return {"rss_bytes": rss, "idle_cpu_percent": cpu}


def idle_check(costs: dict[str, Any], scale_file: Path) -> list[dict[str, Any]]:
    """Each ``targets.py scale`` run in ``scale_file`` (its JSON lines), predicted and measured."""
    out = []
    for line in scale_file.read_text().splitlines():
        run = json.loads(line)
        if run.get("target") != "scale":
            continue
        predicted = predict_idle(costs, run["connected"], run["workers"])
        out.append(
            {
                "sockets": run["connected"],
                "workers": run["workers"],
                "predicted_rss_bytes": round(predicted["rss_bytes"]),
                "measured_rss_bytes": run["server_rss_bytes"],
                "rss_measured_over_predicted": round(
                    run["server_rss_bytes"] / predicted["rss_bytes"], 3
                ),
                "predicted_idle_cpu_percent": round(predicted["idle_cpu_percent"], 2),
                "measured_idle_cpu_percent": run["idle_cpu_percent"],
                "cpu_measured_over_predicted": round(
                    run["idle_cpu_percent"] / predicted["idle_cpu_percent"], 3
                ),
            }
        )
    return out


#: The check's runs, none of them a calibration run: (processes, subscribers, msg/s).
CHECKS = {"deliveries": (3, 300, 200), "messages": (3, 30, 1500)}


def check(costs: dict[str, Any], seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (procs, subscribers, rate) in CHECKS.items():
        run = fanout_cpu(procs, subscribers, rate, seconds)
        predicted = predict(
            costs, procs, run["messages"], run["deliveries"], run["wall_s"], run["connections"]
        )
        out[name] = {"run": run, "predicted": {k: round(v, 3) for k, v in predicted.items()}}
        for key in ("hub", "redis"):
            ratio = run[f"{key}_cpu_s"] / predicted[f"{key}_cpu_s"]
            out[f"{name}_{key}_measured_over_predicted"] = round(ratio, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("costs", "check", "idle-check"))
    parser.add_argument("--scale", type=Path, help="idle-check: a targets.py scale run's output")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--costs", type=Path, default=COSTS)
    args = parser.parse_args()
    if args.what == "idle-check":
        if args.scale is None:
            parser.error("idle-check needs --scale FILE")
        for row in idle_check(json.loads(args.costs.read_text())["median"], args.scale):
            print(json.dumps(row))
        return
    results = []
    for _ in range(args.repeat):
        if args.what == "costs":
            res = measure_costs(args.seconds)
        else:
            res = check(json.loads(args.costs.read_text())["median"], args.seconds)
        print(json.dumps(res), flush=True)
        results.append(res)
    keys = [k for k, v in results[0].items() if isinstance(v, int | float)]
    median = {k: statistics.median(r[k] for r in results) for k in keys}
    print(json.dumps({"median": median}))
    if args.what == "costs":
        args.costs.write_text(json.dumps({"median": median, "runs": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
