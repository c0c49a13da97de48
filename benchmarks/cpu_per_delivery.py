"""The hub's own CPU per delivery at a fixed load: a steadier figure than the max-sustained
search, whose pass/fail on p99 also measures the load generator (see docs/benchmarks.md).

    python benchmarks/cpu_per_delivery.py --repeat 3 [--rate 150] [--seconds 10] [--floor]
        [--publishers 2]
        [HUB FLAGS...]

Starts one redis-server and two ``hub serve --workers 1`` instances (plus any extra flags, for
example ``--history-size 1000 --history-ttl-s 300``), drives them with ``hub bench fanout``
(1,000 subscribers, 2 publishers) at a fixed rate, and divides the hub processes' CPU time
(user + system, from /proc, over the bench's measured phase only) by the deliveries. The
whole run's figure, connecting included, is reported beside it. The write system calls per
delivery (``syscw``) say whether messages batched. Run nothing else heavy meanwhile.

With ``--floor``, each repeat also measures the floor of one delivery (``send_floor.py``: a plain
``socket.send`` of one frame to each of 1,000 loopback sockets at the same rate) and reports the
hub's CPU per delivery as a ratio to it, both taken in the same run.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import statistics
import sys
import threading
import time
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


class Sampler:
    """The hub processes' user and system CPU and write calls, read every ``interval_s`` in a
    thread, so that the bench's measured phase can be cut out of the whole run afterwards."""

    def __init__(self, pids: list[int], interval_s: float = 0.02) -> None:
        self.pids, self.interval_s = pids, interval_s
        self.samples: list[tuple[float, float, float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def read(self) -> tuple[float, float, float, int]:
        splits = [cpu_split(p) for p in self.pids]
        writes = sum(write_calls(p) for p in self.pids)
        return time.time(), sum(u for u, _ in splits), sum(s for _, s in splits), writes

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.samples.append(self.read())

    def __enter__(self) -> Sampler:
        self.samples.append(self.read())
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self.read())

    def at(self, when: float) -> tuple[float, float, float, int]:
        """The last sample taken at or before ``when`` (the first, if none was)."""
        index = bisect.bisect_right([s[0] for s in self.samples], when)
        return self.samples[max(0, index - 1)]


def run(rate: int, seconds: float, flags: list[str], publishers: int = 2) -> dict[str, Any]:
    with redis_server() as url, hubs(2, "--workers", "1", *flags, redis_url=url) as pair:
        with Sampler([pid for _, pid in pair]) as sampler:
            report = bench(
                "fanout", *urls(pair), "-n", "1000", "-p", str(publishers), "--rate", str(rate),
                "-s", "90", "-d", str(seconds), "--procs", "2", "--drain-timeout", "5",
            )  # fmt: skip
    # The measured phase alone, as the floor counts its sends alone: the 1,000 handshakes
    # before it and the closing handshakes after it are not deliveries.
    start = report["measured_started_at"]
    _, user0, sys0, writes0 = sampler.at(start)
    _, user1, sys1, writes1 = sampler.at(start + report["measured_s"])
    _, run_user0, run_sys0, _ = sampler.samples[0]
    _, run_user1, run_sys1, _ = sampler.samples[-1]
    user, system, writes = user1 - user0, sys1 - sys0, writes1 - writes0
    used = user + system
    received = report["messages"]["received"]

    def per_delivery(seconds: float) -> float | None:
        return round(seconds / received * 1e9, 1) if received else None

    return {
        "deliveries": received,
        "lost": report["messages"]["lost"],
        "hub_cpu_s": round(used, 3),
        "hub_cpu_ns_per_delivery": per_delivery(used),
        # The split: user time is the hub's own code; system time is mostly the kernel's
        # TCP path, the receiver's half of it included on loopback.
        "hub_user_ns_per_delivery": per_delivery(user),
        "hub_sys_ns_per_delivery": per_delivery(system),
        # Below 1 when messages batch (one write carries several); 1 plus the Redis and
        # keepalive writes when they do not.
        "hub_writes_per_delivery": round(writes / received, 3) if received else None,
        # The whole run, connecting and closing included (what this script reported before).
        "run_cpu_ns_per_delivery": per_delivery(run_user1 - run_user0 + run_sys1 - run_sys0),
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
    keys += ["hub_writes_per_delivery", "run_cpu_ns_per_delivery"]
    keys += ["floor_ns_per_send", "floor_user_ns_per_send", "floor_sys_ns_per_send"] * args.floor
    keys += ["ratio_to_floor"] * args.floor
    print(json.dumps({"median": {k: statistics.median(r[k] for r in results) for k in keys}}))


if __name__ == "__main__":
    main()
