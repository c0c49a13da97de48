"""One run of one load tool on one workload, for benchmarks/compare_load_tools.py: the servers
it needs, the tool's command line, the checks that do not trust it (the echo server's count, the
independent receiver), and the row of figures."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load_tool_configs import Load, artillery_processor, artillery_script, tsung_xml
from load_tool_reports import artillery_figures, hub_figures, read_json, tsung_figures
from load_tool_watch import Watch, Watched
from targets import PY, free_port, hubs, redis_server, stop, wait_port

HERE = Path(__file__).resolve().parent
TOOLS = ("hub", "artillery", "tsung")
CHANNEL = "cmp"


@dataclass(frozen=True)
class Settings:
    conns: int = 10_000
    conns_ramp_s: float = 10.0
    conns_hold_s: float = 5.0
    echo_sockets: int = 1_000
    echo_rate: float = 10.0  # per socket
    echo_seconds: float = 10.0
    fanout_subscribers: int = 1_000
    fanout_rate: float = 100.0  # messages per second, all to every subscriber
    fanout_seconds: float = 10.0
    checker_sockets: int = 50  # the independent receiver's
    ramp_s: float = 5.0  # echo and fanout
    size: int = 64
    timeout_s: float = 240.0


QUICK = Settings(
    conns=100, conns_ramp_s=1, conns_hold_s=2, echo_sockets=20, echo_rate=5, echo_seconds=2,
    fanout_subscribers=20, fanout_rate=20, fanout_seconds=2, checker_sockets=5, ramp_s=1,
    timeout_s=120,
)  # fmt: skip


class Servers:
    """The echo server, or a hub with its redis-server, on free ports; stopped by pid."""

    def __init__(self, workload: str) -> None:
        self.workload = workload
        self.stack: list[Any] = []
        self.echo: subprocess.Popen[str] | None = None
        self.echo_counts: dict[str, int] = {}

    def __enter__(self) -> int:
        if self.workload == "fanout":
            redis_cm = redis_server()
            url = redis_cm.__enter__()
            self.stack.append(redis_cm)
            hub_cm = hubs(1, "--workers", "1", redis_url=url)
            self.stack.append(hub_cm)
            port: int = hub_cm.__enter__()[0][0]
            return port
        port = free_port()
        self.echo = subprocess.Popen(
            [PY, str(HERE / "compare_echo_server.py"), "--port", str(port)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_port(port)
        return port

    def __exit__(self, *exc: object) -> None:
        if self.echo is not None:
            stop([self.echo])  # type: ignore[list-item]
            assert self.echo.stdout is not None
            lines = [line for line in self.echo.stdout.read().splitlines() if "frames" in line]
            self.echo_counts = json.loads(lines[-1]) if lines else {}
        for cm in reversed(self.stack):
            cm.__exit__(None, None, None)


def load_for(workload: str, s: Settings, port: int) -> Load:
    if workload == "conns":
        # each socket stays from its connect until the last is up, and conns_hold_s more
        hold = s.conns_ramp_s + s.conns_hold_s
        return Load("conns", port, s.conns, s.conns_ramp_s, hold_s=hold)
    if workload == "echo":
        n = max(1, round(s.echo_rate * s.echo_seconds))
        return Load("echo", port, s.echo_sockets, s.ramp_s, rate=s.echo_rate, messages=n)
    # each subscriber stays through the wait for all, the checker's start, the sending, a drain
    hold = s.ramp_s * 1.5 + s.fanout_seconds + 8
    return Load("fanout", port, s.fanout_subscribers, s.ramp_s, hold_s=hold, path=f"/{CHANNEL}")


def hub_argv(load: Load, s: Settings, report: Path) -> list[str]:
    base = [PY, "-m", "hub.bench", load.workload, "--url", f"ws://{load.host}:{load.port}"]
    ramp = f"0:{load.sockets}/{load.ramp_s:g}s"
    tail = ["-q", "--json", str(report), "--ramp", ramp, "-s", str(s.size)]
    if load.workload == "conns":
        # hub bench holds every socket from when all are up
        return [*base, *tail[:5], "--hold", f"{s.conns_hold_s:g}"]
    if load.workload == "echo":
        total = load.rate * load.sockets
        return [*base, *tail, "--rate", f"{total:g}", "-d", f"{s.echo_seconds:g}"]
    return [
        *base, *tail, "--channel", CHANNEL, "-p", "1", "--rate", f"{s.fanout_rate:g}",
        "-d", f"{s.fanout_seconds:g}", "--drain-timeout", "3",
    ]  # fmt: skip


@dataclass(frozen=True)
class Job:
    """One run: ``tool`` (with its installed ``binary``) on ``load``, in the folder ``work``."""

    tool: str
    binary: Path | None
    load: Load
    s: Settings
    work: Path

    def argv(self) -> list[str]:
        load, work = self.load, self.work
        if self.tool == "hub":
            return hub_argv(load, self.s, work / "hub.json")
        assert self.binary is not None
        if self.tool == "artillery":
            (work / "processor.js").write_text(artillery_processor(load))
            (work / "artillery.yml").write_text(artillery_script(load))
            return [
                str(self.binary),
                "run",
                "--output",
                str(work / "artillery.json"),
                "artillery.yml",
            ]
        (work / "tsung.xml").write_text(tsung_xml(load))
        ident = f"cmp{os.getpid()}x{time.monotonic_ns() % 10**6}"  # the controller's node name
        return [
            str(self.binary), "-n", "-i", ident, "-f", str(work / "tsung.xml"),
            "-l", str(work / "tsung"), "start",
        ]  # fmt: skip

    def watch(self, port: int, others: int = 0) -> Watch:
        # no telemetry and no update check from Artillery; nothing leaves the machine anyway
        env = {**os.environ, "ARTILLERY_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
        self.work.mkdir(parents=True, exist_ok=True)
        return Watch(
            self.argv(), port, others=others, timeout_s=self.s.timeout_s, env=env,
            cwd=str(self.work), log=str(self.work / "tool.log"),
        )  # fmt: skip

    def figures(self) -> dict[str, Any]:
        try:
            if self.tool == "hub":
                return hub_figures(read_json(self.work / "hub.json"))
            if self.tool == "artillery":
                return artillery_figures(read_json(self.work / "artillery.json"))
            return tsung_figures(self.work / "tsung")
        except (OSError, ValueError, KeyError) as e:
            return {"error": f"{type(e).__name__}: {e}"}


def spent(w: Watched, start_t: float, end_t: float | None = None) -> float:
    return (w.cpu_s if end_t is None else w.cpu_at(end_t)) - w.cpu_at(start_t)


def per_socket(w: Watched, held: int) -> dict[str, Any]:
    base = w.baseline()
    return {
        "returncode": w.returncode,
        "wall_s": round(w.wall_s, 1),
        "held": held,
        "rss_base_mib": round(base.rss / 2**20, 1),
        "rss_peak_mib": round(w.peak_rss / 2**20, 1),
        "kib_per_socket": round((w.peak_rss - base.rss) / 1024 / held, 2) if held else None,
        "cpu_ms_per_socket": round(spent(w, base.t) * 1000 / held, 3) if held else None,
    }


def run_on_echo(job: Job) -> dict[str, Any]:
    """conns and echo, on the echo server, whose own count is the check."""
    servers = Servers(job.load.workload)
    with servers as port:
        job = replace(job, load=replace(job.load, port=port))
        w = job.watch(port).wait()
    row: dict[str, Any] = {"own": job.figures(), **per_socket(w, w.peak_held)}
    if job.load.workload == "echo":
        frames = servers.echo_counts.get("frames", 0)
        cpu = spent(w, w.baseline().t)
        row |= {
            "server_frames": frames,
            "expected": job.load.sockets * job.load.messages,
            "msgs_per_core_s": round(frames / cpu) if cpu > 0 else None,
        }
    row["server_peak_connections"] = servers.echo_counts.get("peak_connections")
    return row


def checker(port: int, sockets: int, seconds: float) -> subprocess.Popen[str]:
    """benchmarks/independent_receiver.py on the channel, once its sockets are connected."""
    proc = subprocess.Popen(
        [PY, str(HERE / "independent_receiver.py"), f"ws://127.0.0.1:{port}/{CHANNEL}",
         "--sockets", str(sockets), "--seconds", f"{seconds:g}"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    json.loads(proc.stdout.readline())  # {"connected": K}
    return proc


def publish(port: int, s: Settings) -> int:
    """benchmarks/compare_publisher.py at the fan-out's rate; the messages it sent."""
    done = subprocess.run(
        [PY, str(HERE / "compare_publisher.py"), f"ws://127.0.0.1:{port}/{CHANNEL}",
         "--rate", f"{s.fanout_rate:g}", "--seconds", f"{s.fanout_seconds:g}",
         "--size", str(s.size)],
        capture_output=True, text=True, timeout=s.fanout_seconds + 30, check=False,
    )  # fmt: skip
    sent: int = json.loads(done.stdout.splitlines()[-1])["sent"] if done.stdout else 0
    return sent


def handshake_bytes(port: int, path: str) -> int:
    """The size of the server's 101 response: Tsung counts it in its received bytes."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    got = b""
    with socket.create_connection(("127.0.0.1", port), 5) as sock:
        sock.sendall(request.encode())
        while b"\r\n\r\n" not in got and (chunk := sock.recv(4096)):
            got += chunk
    return got.index(b"\r\n\r\n") + 4 if b"\r\n\r\n" in got else 0


def run_fanout(job: Job) -> dict[str, Any]:
    """Subscribers on a hub with redis, one publisher, and the independent receiver."""
    s, k = job.s, job.s.checker_sockets
    with Servers("fanout") as port:
        job = replace(job, load=replace(job.load, port=port))
        published: int | None = None
        if job.tool == "hub":  # its own publisher, after its subscribers: the checker goes first
            check = checker(port, k, 5 + job.load.ramp_s * 1.5 + s.fanout_seconds + 5)
            watch = job.watch(port, others=k)
            watch.wait_held(job.load.sockets + 1, s.timeout_s)
            t0 = time.monotonic() - watch.start
            subscribers = watch.held() - 1
        else:
            watch = job.watch(port)
            watch.wait_held(job.load.sockets, 60 + job.load.ramp_s * 2)
            subscribers = watch.held()
            watch.others = k
            check = checker(port, k, s.fanout_seconds + 5)  # the publisher starts in a second
            watch.others = k + 1
            t0 = time.monotonic() - watch.start
            published = publish(port, s)
            watch.others = k
        w = watch.wait()
        upgrade = handshake_bytes(port, job.load.path) if job.tool == "tsung" else 0
        assert check.stdout is not None
        independent = json.loads(check.stdout.read().splitlines()[-1])
        check.wait(30)
    figures = job.figures()
    if published is None:
        published = figures.get("sent") or 0
    if job.tool == "tsung" and figures.get("bytes_received"):  # bytes only: frames of size + 2
        frames = (figures["bytes_received"] - upgrade * subscribers) / (s.size + 2)
        figures["received_estimated"] = round(frames)
    received = figures.get("received")
    deliveries = received if received is not None else published * subscribers
    cpu = spent(w, t0, t0 + s.fanout_seconds + 1)
    return {
        "own": figures,
        "subscribers": subscribers,
        "published": published,
        "expected": published * subscribers,
        "msgs_per_core_s": round(deliveries / cpu) if cpu > 0 else None,
        "independent": independent | {"lost": published * k - independent.get("frames", 0)},
        **per_socket(w, w.peak_held),
    }


RUNNERS: dict[str, Callable[[Job], dict[str, Any]]] = {
    "conns": run_on_echo,
    "echo": run_on_echo,
    "fanout": run_fanout,
}
