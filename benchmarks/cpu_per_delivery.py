"""The hub's own CPU per delivery at a fixed load: a steadier figure than the max-sustained
search, whose pass/fail on p99 also measures the load generator (see docs/benchmarks.md).

    python benchmarks/cpu_per_delivery.py --repeat 3 [--rate 150] [--seconds 10] [--floor]
        [--publishers 2]
        [HUB FLAGS...]

Starts one redis-server and two ``hub serve --workers 1`` instances (plus any extra flags, for
example ``--history-size 1000 --history-ttl-s 300``), drives them with ``hub bench fanout``
(1,000 subscribers, 2 publishers) at a fixed rate, and divides the hub processes' CPU time
(user + system, from /proc) by the deliveries; the write system calls per delivery (``syscw``)
say whether messages batched. Run nothing else heavy meanwhile.

With ``--floor``, each repeat also measures the floor of one delivery (``send_floor.py``: a plain
``socket.send`` of one frame to each of 1,000 loopback sockets at the same rate) and reports the
hub's CPU per delivery as a ratio to it, both taken in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

# The benchmarks of the tree being measured (the working directory), so that an older checkout
# can be measured with its own driver: cd OLD && PYTHONPATH=OLD python NEW/benchmarks/...
sys.path.insert(0, str(Path.cwd() / "benchmarks"))

from send_floor import measure as measure_floor
from targets import bench, hubs, redis_server, urls

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_split(pid: int) -> tuple[float, float]:
    """The process's user and system CPU seconds so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def cpu_s(pid: int) -> float:
    return sum(cpu_split(pid))


def write_calls(pid: int) -> int:
    """The process's write-type system calls so far (``syscw`` of /proc/PID/io)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    return 0


def run(rate: int, seconds: float, flags: list[str], publishers: int = 2) -> dict[str, Any]:
    with redis_server() as url, hubs(2, "--workers", "1", *flags, redis_url=url) as pair:
        pids = [pid for _, pid in pair]
        before = [cpu_split(p) for p in pids]
        writes_before = sum(write_calls(p) for p in pids)
        report = bench(
            "fanout", *urls(pair), "-n", "1000", "-p", str(publishers), "--rate", str(rate),
            "-s", "90", "-d", str(seconds), "--procs", "2", "--drain-timeout", "5",
        )  # fmt: skip
        after = [cpu_split(p) for p in pids]
        writes = sum(write_calls(p) for p in pids) - writes_before
    user = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
    system = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
    used = user + system
    received = report["messages"]["received"]
    return {
        "deliveries": received,
        "lost": report["messages"]["lost"],
        "hub_cpu_s": round(used, 3),
        "hub_cpu_ns_per_delivery": round(used / received * 1e9, 1) if received else None,
        # The split: user time is the hub's own code; system time is mostly the kernel's
        # TCP path, the receiver's half of it included on loopback.
        "hub_user_ns_per_delivery": round(user / received * 1e9, 1) if received else None,
        "hub_sys_ns_per_delivery": round(system / received * 1e9, 1) if received else None,
        # Below 1 when messages batch (one write carries several); 1 plus the Redis and
        # keepalive writes when they do not.
        "hub_writes_per_delivery": round(writes / received, 3) if received else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=int, default=150, help="messages/s over both publishers")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--floor", action="store_true", help="also measure the send() floor")
    parser.add_argument(
        "--publishers", type=int, default=2, help="1: messages never meet in one write"
    )
    args, flags = parser.parse_known_args()
    results = []
    for _ in range(args.repeat):
        res = run(args.rate, args.seconds, flags, args.publishers)
        if args.floor:
            measured = measure_floor(1000, args.rate, args.seconds)
            floor = measured["cpu_ns_per_send"]
            res["floor_ns_per_send"] = floor
            res["floor_user_ns_per_send"] = measured["user_ns_per_send"]
            res["floor_sys_ns_per_send"] = measured["sys_ns_per_send"]
            res["ratio_to_floor"] = round(res["hub_cpu_ns_per_delivery"] / floor, 3)
        print(json.dumps(res), flush=True)
        results.append(res)
    keys = ["hub_cpu_ns_per_delivery", "hub_user_ns_per_delivery", "hub_sys_ns_per_delivery"]
    keys += ["hub_writes_per_delivery"]
    keys += ["floor_ns_per_send", "floor_user_ns_per_send", "floor_sys_ns_per_send"] * args.floor
    keys += ["ratio_to_floor"] * args.floor
    print(json.dumps({"median": {k: statistics.median(r[k] for r in results) for k in keys}}))


if __name__ == "__main__":
    main()
