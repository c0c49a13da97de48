"""Measure the five targets of docs/benchmarks.md on this machine.

Each target starts the servers it needs (real redis-server and hub processes on free loopback
ports), drives them with ``hub bench``, prints one JSON line per run, and stops what it started.

    python benchmarks/targets.py fanout --repeat 3      # 1. max sustained fan-out, hub vs reference
    python benchmarks/targets.py latency --repeat 3     # 2. p99 at 100 msg/s to 1,000
    python benchmarks/targets.py memory --repeat 3      # 3. memory per idle socket, raw + hub.v1
    python benchmarks/targets.py scale --repeat 3       # 4. 100k sockets + broadcast-all
    python benchmarks/targets.py bench --repeat 3       # 5. the bench's own limits

Run nothing else heavy meanwhile: the machine's cores are shared by the servers and the bench.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hub.cli.embedded_redis import redis_server_argv

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(port: int, path: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered {path} on port {port}")


def wait_port(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    port, folder = free_port(), tempfile.mkdtemp(prefix="hub-bench-redis-")
    proc = subprocess.Popen(redis_server_argv(dir=folder, port=port), stdout=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop([proc])
        shutil.rmtree(folder, ignore_errors=True)


def server_env() -> dict[str, str]:
    """The environment of ``python -m hub serve``: with ``HUB_SERVER_PYTHONPATH``, one that
    imports ``hub`` from that checkout."""
    env = dict(os.environ)
    if os.environ.get("HUB_SERVER_PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["HUB_SERVER_PYTHONPATH"]
        # ``python -m`` puts the working directory (this checkout) first on sys.path, ahead of
        # PYTHONPATH: without this, the "other" server was this one.
        env["PYTHONSAFEPATH"] = "1"
    return env


@contextlib.contextmanager
def hubs(n: int, *args: str, redis_url: str | None = None) -> Iterator[list[tuple[int, int]]]:
    """``n`` hub instances; yields (port, pid) pairs.

    ``HUB_SERVER_PYTHONPATH`` runs the hubs from another checkout while the bench stays this
    one's, so that a before/after compares servers and nothing else.
    """
    procs, out = [], []
    env = server_env()
    try:
        for _ in range(n):
            port = free_port()
            cmd = [PY, "-m", "hub", "serve", "--port", str(port), *args]
            if redis_url:
                cmd += ["--redis", redis_url]
            procs.append(
                subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            )
            out.append((port, procs[-1].pid))
        for port, _ in out:
            wait_http(port, "/readyz")
        yield out
    finally:
        stop(procs)


@contextlib.contextmanager
def reference() -> Iterator[list[tuple[int, int]]]:
    port = free_port()
    proc = subprocess.Popen(
        [PY, str(ROOT / "benchmarks" / "reference_broadcast.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        yield [(port, proc.pid)]
    finally:
        stop([proc])


def bench(*args: str, timeout_s: float = 600) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run(
            [PY, "-m", "hub.bench", *args, "-q", "--json", f.name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout_s,
            check=False,
        )
        report: dict[str, Any] = json.loads(Path(f.name).read_text())
        return report


def urls(servers: list[tuple[int, int]]) -> list[str]:
    out: list[str] = []
    for port, _ in servers:
        out += ["--url", f"ws://127.0.0.1:{port}"]
    return out


def fanout_run(servers: list[tuple[int, int]], rate: int, seconds: float) -> dict[str, Any]:
    r = bench(
        "fanout",
        *urls(servers),
        "-n",
        "1000",
        "-p",
        "2",
        "--rate",
        str(rate),
        "-s",
        "90",
        "-d",
        str(seconds),
        "--procs",
        "2",
        "--drain-timeout",
        "5",
    )
    m, lat = r["messages"], r["latency_us"]
    return {
        "rate": rate,
        "deliveries_per_s": m["recv_per_s"],
        "lost": m["lost"],
        "p50_ms": (lat.get("p50") or 0) / 1000,
        "p99_ms": (lat.get("p99") or 0) / 1000,
        "ok": m["lost"] == 0 and m["duplicates"] == 0 and 0 < (lat.get("p99") or 1e12) < 100_000,
    }


def max_sustained(servers: list[tuple[int, int]], seconds: float) -> dict[str, Any]:
    """Double the rate while p99 < 100 ms with zero loss, then bisect between pass and fail."""
    best: dict[str, Any] | None = None
    lo, hi, rate = 0, None, 50
    while hi is None and rate <= 20_000:
        run = fanout_run(servers, rate, seconds)
        if run["ok"]:
            best, lo, rate = run, rate, rate * 2
        else:
            hi = rate
    for _ in range(4):
        if hi is None or hi - lo <= max(10, lo // 10):
            break
        mid = (lo + hi) // 2
        run = fanout_run(servers, mid, seconds)
        if run["ok"]:
            best, lo = run, mid
        else:
            hi = mid
    return best or {"rate": 0, "deliveries_per_s": 0}


def target_fanout(seconds: float) -> dict[str, Any]:
    with reference() as ref:
        r = max_sustained(ref, seconds)
    with redis_server() as url, hubs(2, "--workers", "1", redis_url=url) as pair:
        h = max_sustained(pair, seconds)
    ratio = h["deliveries_per_s"] / r["deliveries_per_s"] if r["deliveries_per_s"] else None
    return {"target": "fanout", "reference": r, "hub": h, "ratio": ratio}


def target_latency(seconds: float) -> dict[str, Any]:
    with redis_server() as url, hubs(2, "--workers", "1", redis_url=url) as pair:
        run = fanout_run(pair, 100, seconds)
    return {"target": "latency", **run}


def server_rss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def target_memory(n: int) -> dict[str, Any]:
    """Idle sockets held on one worker: raw (all on one channel) and hub.v1 (subscribed to
    one channel), then the reference server; the RSS growth per connection of each."""
    out: dict[str, Any] = {"target": "memory", "sockets": n}
    for protocol, key in (("raw", "hub"), ("hub.v1", "hub_v1")):
        with hubs(1, "--workers", "1") as hub:
            r = bench(
                "conns",
                *urls(hub),
                "--protocol",
                protocol,
                "-n",
                str(n),
                "--hold",
                "3",
                "--server-pid",
                str(hub[0][1]),
            )
            out[f"{key}_per_connection_bytes"] = r["server_memory"]["per_connection_bytes"]
    with reference() as ref:
        r = bench("conns", *urls(ref), "-n", str(n), "--hold", "3", "--server-pid", str(ref[0][1]))
        out["reference_per_connection_bytes"] = r["server_memory"]["per_connection_bytes"]
    return out


class EndpointPoller:
    """Ask a hub's /stats and /metrics every ``every_s`` in a thread, while a run holds its
    sockets: each answer's time, and every failure, so that a run says whether those pages
    still answer at its size (a worker's metrics files and /stats' merge grow with it)."""

    def __init__(self, port: int, pid: int, every_s: float = 5.0) -> None:
        self.port, self.pid, self.every_s = port, pid, every_s
        #: (time, the hub's CPU seconds, connections) at each /stats answer: the idle CPU.
        self.cpu: list[tuple[float, float, int]] = []
        self.times: dict[str, list[float]] = {"/stats": [], "/metrics": []}
        self.failures: list[str] = []
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> EndpointPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            for path in self.times:
                started = time.perf_counter()
                try:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{self.port}{path}", timeout=10
                    ) as r:
                        body = r.read()
                except OSError as exc:
                    self.failures.append(f"{path}: {exc}")
                    continue
                self.times[path].append(time.perf_counter() - started)
                if path == "/stats":
                    connections = json.loads(body)["totals"]["connections"]
                    self.connections = max(self.connections, connections)
                    self.cpu.append((time.monotonic(), hub_cpu_s(self.pid), connections))

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"endpoint_failures": len(self.failures)}
        for path, times in self.times.items():
            key = path.strip("/")
            out[f"{key}_answers"] = len(times)
            out[f"{key}_max_ms"] = round(max(times) * 1000, 1) if times else None
        out["stats_max_connections"] = self.connections
        # The hub's CPU while every socket was held and idle (keepalive, metrics, these polls).
        held = [row for row in self.cpu if row[2] == self.connections]
        if len(held) >= 2 and held[-1][0] > held[0][0]:
            (t0, c0, _), (t1, c1, _) = held[0], held[-1]
            out["idle_cpu_percent"] = round((c1 - c0) / (t1 - t0) * 100, 2)
            out["idle_window_s"] = round(t1 - t0, 1)
        return out


def hub_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a hub's supervisor and its workers (not its Redis)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid] + [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]
    for p in pids:
        try:
            if Path(f"/proc/{p}/comm").read_text().strip() == "redis-server":
                continue
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def broadcast_figures(report: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A broadcast-all report's counts and latency (ms), each key starting with ``prefix``."""
    latency = report["latency_us"]
    return {
        f"{prefix}_connected": report["connections"]["connected"],
        f"{prefix}_failed": report["connections"]["failed"],
        f"{prefix}_received": report["messages"]["received"],
        f"{prefix}_expected": report["messages"]["expected"],
        **{f"{prefix}_{q}_ms": latency[q] / 1000 for q in ("p50", "p99", "max")},
    }


def target_scale(n: int, workers: int, hold_s: float = 45) -> dict[str, Any]:
    """``n`` sockets held for ``hold_s`` (two keepalive intervals: the idle CPU), then
    broadcast-all to them; /stats and /metrics asked every 5 s meanwhile."""
    procs = max(6, -(-n // 18_000))
    with hubs(1, "--workers", str(workers), "--max-buffered-bytes", "4MiB") as hub:
        port, pid = hub[0]
        time.sleep(2)  # the workers' own start-up
        with EndpointPoller(port, pid) as poller:
            held = bench(
                "conns",
                *urls(hub),
                "-n",
                str(n),
                "--procs",
                str(procs),
                "--hold",
                str(hold_s),
                "--channels",
                "1",
                "--server-pid",
                str(pid),
                "--server-children",
            )
        b = bench(
            "broadcast-all",
            *urls(hub),
            "-n",
            str(n),
            "--procs",
            str(procs),
            "--channels",
            "1",
            "--rounds",
            "3",
            "--round-timeout",
            "30",
        )
    c = held["connections"]
    return {
        "target": "scale",
        "sockets": n,
        "workers": workers,
        "connected": c["connected"],
        "failed": c["failed"],
        "connect_s": c["connect_s"],
        "connect_rate_per_s": c["connect_rate_per_s"],
        "server_rss_bytes": held["server_memory"]["rss_after_bytes"],
        "server_per_connection_bytes": held["server_memory"]["per_connection_bytes"],
        **poller.summary(),
        **broadcast_figures(b, "broadcast"),
        "rounds_all_received_ms": [
            r["all_received_us"] / 1000 if r["all_received_us"] else None for r in b["rounds"]
        ],
    }


def target_bench() -> dict[str, Any]:
    with hubs(1, "--workers", "1") as hub:
        c = bench("conns", *urls(hub), "-n", "10000", "--procs", "1", "--hold", "3")
    with redis_server() as url, hubs(2, "--workers", "1", redis_url=url) as pair:
        f = bench(
            "fanout",
            *urls(pair),
            "-n",
            "1000",
            "-p",
            "2",
            "--rate",
            "max",
            "-s",
            "90",
            "-d",
            "5",
            "--procs",
            "1",
        )
    return {
        "target": "bench",
        "connect_10k_s": c["connections"]["connect_s"],
        "client_per_socket_bytes": c["client"]["memory"]["per_socket_bytes"],
        "recv_per_s_one_proc": f["messages"]["recv_per_s"],
        "bench_cpu_percent": [p["cpu_percent_phase"] for p in f["client"]["procs"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("target", choices=["fanout", "latency", "memory", "scale", "bench"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each fan-out run")
    parser.add_argument("--sockets", type=int, default=100_000, help="for scale")
    parser.add_argument("--workers", type=int, default=6, help="hub workers, for scale")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    results = []
    for _ in range(args.repeat):
        if args.target == "fanout":
            res = target_fanout(args.seconds)
        elif args.target == "latency":
            res = target_latency(args.seconds)
        elif args.target == "memory":
            res = target_memory(5000)
        elif args.target == "scale":
            res = target_scale(args.sockets, args.workers)
        else:
            res = target_bench()
        print(json.dumps(res), flush=True)
        results.append(res)
    numeric = {k for k, v in results[0].items() if isinstance(v, int | float)}
    print(json.dumps({"median": {k: statistics.median(r[k] for r in results) for k in numeric}}))


if __name__ == "__main__":
    main()
