"""End-to-end tests of hub bench: real server processes, real bench processes, exact counts."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import ROOT, free_port, stop_process, t
from support.bench_status import counted_status

# Each target is a command that serves raw mode on {port}.
SERVERS: dict[str, list[str]] = {
    "hub": [sys.executable, "-m", "hub", "serve", "--workers", "1", "--port", "{port}"],
    "reference": [
        sys.executable,
        str(ROOT / "benchmarks" / "reference_broadcast.py"),
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
    ],
}


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"server not listening on {port} after {timeout_s}s")


@pytest.fixture(params=sorted(SERVERS))
def server_url(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """A raw-mode server in a subprocess; yields its URL and pid."""
    port = free_port()
    command = [part.format(port=port) for part in SERVERS[request.param]]
    process = subprocess.Popen(command, cwd=ROOT)
    try:
        wait_listening(port, process, t(20))
        yield f"ws://127.0.0.1:{port}", process.pid
    finally:
        stop_process(process, t(10))


def bench(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "hub.bench", *args, "--json", str(out), "--strict"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=t(120),
    )
    assert out.exists(), f"no report; stdout={result.stdout} stderr={result.stderr}"
    report: dict[str, Any] = json.loads(out.read_text())
    return counted_status(result.returncode, report), report


@pytest.mark.parametrize("client", ["lean", "picows"])
def test_fanout(server_url: tuple[str, int], tmp_path: Path, client: str) -> None:
    """Every subscriber gets every message of every publisher, once and in order."""
    url, _pid = server_url
    rc, report = bench(
        tmp_path,
        "fanout",
        "--url",
        url,
        "-n",
        "20",
        "-p",
        "2",
        "-m",
        "200",
        "--procs",
        "2",
        "--client",
        client,
    )
    assert report["config"]["client"] == client
    messages = report["messages"]
    assert report["connections"]["connected"] == 22
    assert messages["sent"] == 200
    assert messages["sent_by_publisher"] == {"0": 100, "1": 100}
    assert messages["received"] == 20 * 200
    assert messages["unique"] == 20 * 200
    assert (messages["lost"], messages["duplicates"], messages["reordered"]) == (0, 0, 0)
    assert report["latency_us"]["count"] == 20 * 200
    assert rc == 0


def test_fanout_max_rate(server_url: tuple[str, int], tmp_path: Path) -> None:
    """--rate max sends the count asked, windowed, with nothing lost."""
    url, _pid = server_url
    rc, report = bench(
        tmp_path, "fanout", "--url", url, "-n", "10", "-m", "300", "--rate", "max", "--procs", "1"
    )
    assert report["messages"]["received"] == 10 * 300
    assert report["messages"]["lost"] == 0
    assert rc == 0


@pytest.mark.parametrize("client", ["lean", "picows"])
def test_echo(server_url: tuple[str, int], tmp_path: Path, client: str) -> None:
    """Each client gets each of its own messages back."""
    url, _pid = server_url
    rc, report = bench(
        tmp_path, "echo", "--url", url, "-n", "20", "-m", "50", "--procs", "2", "--client", client
    )
    messages = report["messages"]
    assert messages["sent"] == 1000
    assert messages["received"] == 1000
    assert messages["lost"] == 0
    assert report["latency_us"]["count"] == 1000
    assert rc == 0


def test_conns(server_url: tuple[str, int], tmp_path: Path) -> None:
    """Idle sockets all connect and stay; the server's memory is read from its pid."""
    url, pid = server_url
    rc, report = bench(
        tmp_path,
        "conns",
        "--url",
        url,
        "-n",
        "200",
        "--procs",
        "2",
        "--hold",
        "1",
        "--settle",
        "0.3",
        "--server-pid",
        str(pid),
    )
    assert report["connections"]["connected"] == 200
    assert report["connections"]["failed"] == 0
    assert report["connections"]["disconnected"] == 0
    assert report["server_memory"]["source"] == "pids"
    assert report["server_memory"]["rss_before_bytes"] > 0
    assert len(report["client"]["procs"]) == 2
    assert rc == 0


@pytest.mark.parametrize("channels", [1, 4])
def test_broadcast_all(server_url: tuple[str, int], tmp_path: Path, channels: int) -> None:
    """One message per round reaches every held socket, on one channel or many."""
    url, _pid = server_url
    rc, report = bench(
        tmp_path,
        "broadcast-all",
        "--url",
        url,
        "-n",
        "200",
        "--channels",
        str(channels),
        "--rounds",
        "2",
        "--procs",
        "2",
    )
    assert [(r["received"], r["expected"]) for r in report["rounds"]] == [(200, 200)] * 2
    assert report["messages"]["sent"] == 2 * channels
    assert report["messages"]["lost"] == 0
    assert report["latency_us"]["count"] == 400
    assert rc == 0


def test_connection_failures_fail_strict(tmp_path: Path) -> None:
    """With no server, every connection fails and --strict exits nonzero."""
    port = free_port()
    rc, report = bench(
        tmp_path, "conns", "--url", f"ws://127.0.0.1:{port}", "-n", "5", "--hold", "0.1"
    )
    assert report["connections"]["failed"] == 5
    assert report["connections"]["errors"]
    assert rc == 1


def test_sizing_error_before_starting() -> None:
    """A socket count that cannot fit the processes' open-file limit is refused up front."""
    result = subprocess.run(
        [sys.executable, "-m", "hub.bench", "conns", "-n", "10000000", "--procs", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=t(60),
    )
    assert result.returncode == 2
    assert "--procs" in result.stderr
