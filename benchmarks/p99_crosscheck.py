"""Does ``hub bench`` report the latency the servers deliver? Its p99 against that of an
independent minimal receiver (benchmarks/independent_receiver.py) on the same messages.

    python benchmarks/p99_crosscheck.py --repeat 3

Each run starts one redis-server and two ``hub serve --workers 1``, connects 500 independent
sockets to channel ``xcheck`` on the second hub, and runs ``hub bench fanout`` with 500
subscribers and 2 publishers at 100 msg/s on that channel over both hubs: 1,000 subscribers,
100k deliveries/s, as issue 12 measured. Both report p50 and p99 of the same messages; the
ratio bench/independent says how much the bench adds. Run nothing else heavy meanwhile.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from targets import PY, bench, hubs, redis_server, urls

HERE = Path(__file__).resolve().parent


def run(seconds: float) -> dict[str, Any]:
    with redis_server() as url, hubs(2, "--workers", "1", redis_url=url) as servers:
        receiver = subprocess.Popen(
            [PY, str(HERE / "independent_receiver.py"), f"ws://127.0.0.1:{servers[1][0]}/xcheck",
             "--sockets", "500", "--seconds", str(seconds + 15)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert receiver.stdout is not None
        json.loads(receiver.stdout.readline())  # connected
        report = bench(
            "fanout", *urls(servers), "-n", "500", "-p", "2", "--rate", "100", "-s", "90",
            "-d", str(seconds), "--procs", "2", "--channel", "xcheck", "--drain-timeout", "3",
        )  # fmt: skip
        independent = json.loads(receiver.stdout.readline())
        receiver.wait(30)
    lat = report["latency_us"]
    out = {
        "bench_p50_ms": round(lat["p50"] / 1000, 3),
        "bench_p99_ms": round(lat["p99"] / 1000, 3),
        "bench_lost": report["messages"]["lost"],
        "independent_p50_ms": independent["p50_ms"],
        "independent_p99_ms": independent["p99_ms"],
        "independent_frames": independent["frames"],
    }
    out["p99_ratio"] = round(out["bench_p99_ms"] / out["independent_p99_ms"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    results = []
    for _ in range(args.repeat):
        res = run(args.seconds)
        print(json.dumps(res), flush=True)
        results.append(res)
    print(json.dumps({"median": {k: statistics.median(r[k] for r in results) for k in results[0]}}))


if __name__ == "__main__":
    main()
