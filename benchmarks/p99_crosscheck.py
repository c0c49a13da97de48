"""Does ``hub bench`` report the latency the servers deliver? Its p99, with its default flags,
against that of an independent minimal receiver (benchmarks/independent_receiver.py), in
alternating runs on the same servers.

    python benchmarks/p99_crosscheck.py --repeat 3 --seconds 6

One redis-server and two ``hub serve --workers 1`` are started once. Then, ``--repeat`` times,
in turn:

- ``bench``: ``hub bench fanout --url HUB1 --url HUB2 -n 1000 --rate 100 -d 6 --channel
  xcheck`` and nothing else: every other flag at its default (procs, publishers, size, client);
- ``independent``: ``independent_receiver.py`` with 1,000 sockets over the same two hubs and
  its own publisher at the same rate and size, on the same channel.

Both are 1,000 subscribers at 100 msg/s: 100k deliveries/s. It prints one JSON line per run,
then the medians, the ratio of the medians, and whether the bench's median p99 is within
``1.25 x independent + 5 ms`` (issue 23's goal; exit status 1 when not). Run nothing else
meanwhile: the servers, the bench and the receiver share this machine's cores.
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

from targets import PY, bench, hubs, redis_server

HERE = Path(__file__).resolve().parent
CHANNEL = "xcheck"
#: The goal: the bench's p99 at most this factor of the independent receiver's, plus the slack.
FACTOR, SLACK_MS = 1.25, 5.0
#: hub bench fanout's default message size (--size), which the receiver's publisher copies.
SIZE = 64


def bench_run(ports: list[int], args: argparse.Namespace) -> dict[str, Any]:
    urls = [f"--url=ws://127.0.0.1:{port}" for port in ports]
    extra = [] if args.publishers is None else ["-p", str(args.publishers)]
    report = bench(
        "fanout", *urls, "-n", str(args.sockets), "--rate", str(args.rate),
        "-d", str(args.seconds), "--channel", CHANNEL, *extra,
    )  # fmt: skip
    lat, messages = report["latency_us"], report["messages"]
    return {
        "run": "bench",
        "p50_ms": round(lat["p50"] / 1000, 3),
        "p99_ms": round(lat["p99"] / 1000, 3),
        "max_ms": round(lat["max"] / 1000, 3),
        "received": messages["unique"],
        "expected": messages["expected"],
        "lost": messages["lost"],
        "bench_bound": report["client"].get("bench_bound", []),
        "loop_lag_p99_ms": [p["loop_lag_ms"].get("p99_ms") for p in report["client"]["procs"]],
    }


def independent_run(ports: list[int], args: argparse.Namespace) -> dict[str, Any]:
    urls = [f"ws://127.0.0.1:{port}/{CHANNEL}" for port in ports]
    out = subprocess.run(
        [PY, str(HERE / "independent_receiver.py"), *urls, "--sockets", str(args.sockets),
         "--publishers", str(args.publishers or 1), "--rate", str(args.rate),
         "--size", str(SIZE), "--seconds", str(args.seconds)],
        capture_output=True, text=True, timeout=120 + args.seconds, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout.splitlines()[-1])
    return {
        "run": "independent",
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "max_ms": result["max_ms"],
        "received": result["frames"],
        "expected": result["expected"],
        "lost": max(0, result["expected"] - result["frames"]),
    }


def verdict(bench_p99s: list[float], independent_p99s: list[float]) -> dict[str, Any]:
    """The medians, their ratio, the limit the bench's median must stay under, and ok."""
    bench_ms = statistics.median(bench_p99s)
    independent_ms = statistics.median(independent_p99s)
    limit = FACTOR * independent_ms + SLACK_MS
    return {
        "bench_p99_median_ms": bench_ms,
        "independent_p99_median_ms": independent_ms,
        "ratio": round(bench_ms / independent_ms, 3) if independent_ms else None,
        "limit_ms": round(limit, 3),
        "ok": bench_ms <= limit,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--sockets", type=int, default=1000, help="subscribers in each run")
    parser.add_argument("--rate", type=float, default=100.0, help="messages/s in all")
    parser.add_argument(
        "--publishers", type=int, default=None, help="(default: hub bench's default, 1)"
    )
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"bench": [], "independent": []}
    with redis_server() as url, hubs(2, "--workers", "1", redis_url=url) as servers:
        ports = [port for port, _ in servers]
        for _ in range(args.repeat):
            for name, measure in (("bench", bench_run), ("independent", independent_run)):
                result = measure(ports, args)
                print(json.dumps(result), flush=True)
                runs[name].append(result)
    out = verdict([r["p99_ms"] for r in runs["bench"]], [r["p99_ms"] for r in runs["independent"]])
    out["bench_p99_ms"] = [r["p99_ms"] for r in runs["bench"]]
    out["independent_p99_ms"] = [r["p99_ms"] for r in runs["independent"]]
    out["bench_p50_median_ms"] = statistics.median(r["p50_ms"] for r in runs["bench"])
    out["independent_p50_median_ms"] = statistics.median(r["p50_ms"] for r in runs["independent"])
    print(json.dumps(out), flush=True)
    print(
        f"p99 median: hub bench {out['bench_p99_median_ms']} ms, independent "
        f"{out['independent_p99_median_ms']} ms, ratio {out['ratio']}; limit "
        f"{FACTOR} x independent + {SLACK_MS:g} ms = {out['limit_ms']} ms: "
        f"{'PASS' if out['ok'] else 'FAIL'}"
    )
    sys.exit(0 if out["ok"] else 1)


if __name__ == "__main__":
    main()
