"""Broadcast-all to 100,000 sockets: the hub's p99, apart from the bench's own receive cost.

    python benchmarks/broadcast_crosscheck.py --repeat 3
    python benchmarks/broadcast_crosscheck.py --sockets 100000 --receiver 1000 --rounds 40

One redis-server and one ``hub serve --workers 6`` (``--max-buffered-bytes 4MiB``, as
``targets.py scale``). Then, ``--repeat`` times:

1. ``hub bench broadcast-all`` with ``--sockets`` minus ``--receiver`` sockets on one channel,
   ``--rounds`` rounds back to back (each round: one message to all, and the next once every
   bench socket has it);
2. once the hub counts those sockets in ``/stats``, ``independent_receiver.py`` (no code shared
   with the bench) opens ``--receiver`` more on the same channel and listens through the rest
   of the rounds: the hub holds ``--sockets`` in all.

The receiver's sockets subscribe after every bench socket, and a worker writes a broadcast to
its subscribers in the order they subscribed, in one pass: **they are the last sockets each
worker writes to**, so their latency bounds from above that of every socket of the same worker.
Its p99 is an upper bound of the hub's p99 over all sockets, taken by a process with few
sockets, which reads as soon as the kernel wakes it; the bench's p99 adds what its six
processes, each reading ~16,500 sockets per round through Python, wait for the CPU.

It prints one JSON line per run (the bench's p50/p99 over the rounds the receiver heard in
full, the receiver's p50/p99/max, the counts, what the bench lost, and the hub's probe
failures meanwhile: a worker that calls itself deaf drops what was in flight to it), then the
medians. ``--hub-arg`` passes more arguments to ``hub serve`` (a shorter probe timeout shows
whether a loaded worker calls itself deaf). Run nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))

from targets import PY, broadcast_figures, hubs, redis_server

HERE = Path(__file__).resolve().parent
CHANNEL = "xcheck"


def hub_connections(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as r:
        count: int = json.loads(r.read())["totals"]["connections"]
        return count


def probe_failures(port: int) -> int:
    """The hub's false or true "deaf" verdicts so far, over its workers (/metrics)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        text = r.read().decode()
    return round(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "hub_broker_probe_failures_total"
        )
    )


def run_once(
    port: int, sockets: int, receiver: int, rounds: int, bench_nice: int = 0
) -> dict[str, Any]:
    bench_sockets = sockets - receiver
    procs = max(6, -(-bench_sockets // 18_000))
    receiving: subprocess.Popen[str] | None = None
    with (
        tempfile.TemporaryFile("w+") as receiver_err,
        tempfile.NamedTemporaryFile(suffix=".json") as report_file,
    ):
        bench = subprocess.Popen(
            [
                *(["nice", "-n", str(bench_nice)] if bench_nice else []),
                PY, "-m", "hub.bench", "broadcast-all", "--url", f"ws://127.0.0.1:{port}",
                "--channel", CHANNEL, "--channels", "1", "-n", str(bench_sockets),
                "--procs", str(procs), "--rounds", str(rounds), "--round-timeout", "30",
                "-q", "--json", report_file.name,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 300
            while hub_connections(port) < bench_sockets:
                if bench.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the bench did not connect {bench_sockets} sockets")
                time.sleep(0.2)
            done = Path(report_file.name + ".done")
            receiving = subprocess.Popen(
                [
                    PY, str(HERE / "independent_receiver.py"),
                    f"ws://127.0.0.1:{port}/{CHANNEL}", "--sockets", str(receiver),
                    "--seconds", "600", "--until", str(done), "--connect-timeout", "60",
                ],
                stdout=subprocess.PIPE,
                stderr=receiver_err,  # a file: a pipe nobody reads during the run could fill
                text=True,
            )  # fmt: skip
            bench.wait(timeout=600)
            done.touch()
            out, _ = receiving.communicate(timeout=60)
            done.unlink()
        finally:
            for proc in (bench, receiving):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()
        report: dict[str, Any] = json.loads(Path(report_file.name).read_text())
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        if not lines:
            receiver_err.seek(0)
            said = receiver_err.read()[-2000:]
            raise RuntimeError(f"the independent receiver reported nothing; it said: {said}")
    heard = lines[-1]
    # Rounds whose every message reached each of the receiver's sockets: the last ones.
    rounds_heard = int(heard["frames"]) // receiver
    tail = report["rounds"][rounds - rounds_heard :] if rounds_heard else []
    return {
        "sockets": sockets,
        "bench_nice": bench_nice,
        **broadcast_figures(report, "bench"),
        # The same rounds as the receiver's, each round's p99, their median.
        "bench_rounds_p99_ms": statistics.median(r["latency_us"]["p99"] / 1000 for r in tail)
        if tail
        else None,
        "bench_lost": report["messages"]["lost"],
        "bench_each_round_p99_ms": [round(r["latency_us"]["p99"] / 1000) for r in report["rounds"]],
        "receiver_sockets": receiver,
        "receiver_frames": heard["frames"],
        "receiver_rounds": rounds_heard,
        "receiver_whole_rounds": heard["frames"] % receiver == 0,
        "receiver_p50_ms": heard.get("p50_ms"),
        "receiver_p99_ms": heard.get("p99_ms"),
        "receiver_max_ms": heard.get("max_ms"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sockets", type=int, default=100_000, help="in all, receiver's too")
    parser.add_argument("--receiver", type=int, default=1000, help="the receiver's sockets")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument(
        "--bench-nice",
        type=int,
        default=0,
        help="run the bench's processes at this niceness (the receiver and hub at 0): "
        "what the hub's p99 would be if its clients' receive cost ran elsewhere",
    )
    parser.add_argument(
        "--hub-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more argument of hub serve, e.g. --hub-arg=--probe-timeout-s --hub-arg=1.5",
    )
    args = parser.parse_args()
    runs = []
    with (
        redis_server() as redis_url,
        hubs(
            1,
            "--workers",
            str(args.workers),
            "--max-buffered-bytes",
            "4MiB",
            *args.hub_arg,
            redis_url=redis_url,
        ) as hub,
    ):
        port, _ = hub[0]
        time.sleep(2)  # the workers' own start-up
        for _ in range(args.repeat):
            before = probe_failures(port)
            runs.append(run_once(port, args.sockets, args.receiver, args.rounds, args.bench_nice))
            # A worker that calls itself deaf drops its pub/sub connection: what was in flight
            # to it is lost (bench_lost), so the two are reported side by side.
            runs[-1]["probe_failures"] = probe_failures(port) - before
            print(json.dumps(runs[-1]), flush=True)
            time.sleep(3)  # the closed sockets' TIME_WAIT and the workers' cleanup
    keys = ("bench_p99_ms", "bench_rounds_p99_ms", "receiver_p50_ms", "receiver_p99_ms")
    medians = {k: statistics.median([r[k] for r in runs if r[k] is not None] or [0]) for k in keys}
    print(json.dumps({"median": medians}))


if __name__ == "__main__":
    main()
