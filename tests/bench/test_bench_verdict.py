"""The default verdict of ``hub bench``, driven as a user runs it: any loss, duplicate or
reordering fails the run (exit status 1) unless a threshold on the figure allows it, zero
sockets connected always does, and one line says so, even with -q. Also ``echo --rate``
(the reordering case needs it: a closed loop cannot be reordered) and the help texts."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import ROOT, free_port, t
from test_bench_targets import start_echo


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """``hub bench ARGS`` through the ``hub`` command, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "hub", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=t(120),
    )


def run_json(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    out = tmp_path / "run.json"
    result = run(*args, "--json", str(out))
    assert out.exists(), result
    return result, json.loads(out.read_text())


@pytest.fixture
def echo_url(tmp_path: Path) -> Iterator[str]:
    """A websockets echo server: fan-out subscribers on it get nothing (it answers the
    sender only), so every expected delivery is lost."""
    for url, _log in start_echo(tmp_path, False):
        yield url


@pytest.fixture
def twice_url(tmp_path: Path) -> Iterator[str]:
    """An echo server that sends every frame back twice."""
    for url, _log in start_echo(tmp_path, False, "--twice"):
        yield url


@pytest.fixture
def swap_url(tmp_path: Path) -> Iterator[str]:
    """An echo server that sends frames back in pairs, the second one first."""
    for url, _log in start_echo(tmp_path, False, "--swap"):
        yield url


def test_a_fanout_run_that_lost_everything_fails(echo_url: str, tmp_path: Path) -> None:
    """300 of 300 lost is a failed run, with no flag; -q prints the one verdict line."""
    fanout = ("fanout", "--url", f"{echo_url}/p", "-n", "1", "-m", "300", "--procs", "1")
    result, report = run_json(tmp_path, *fanout, "-q")
    assert report["messages"]["lost"] == 300
    assert report["messages"]["loss_percent"] == 100.0
    assert result.returncode == 1, result
    assert result.stdout.splitlines() == [
        "hub bench fanout: FAILED: 2 of 2 sockets connected; 0 of 300 expected deliveries "
        "arrived, 300 lost (100%), 0 duplicates, 0 reordered; failed: lost = 0"
    ]
    rows = {c["name"]: c["failed"] for c in report["thresholds"]}
    assert rows == {
        "connected > 0": False,
        "lost = 0": True,
        "duplicates = 0": False,
        "reordered = 0": False,
    }
    # A threshold on the loss replaces the default, in percent of the expected deliveries:
    # 'loss<1%' still fails this run, 'loss<=100%' lets it pass.
    strict = run(*fanout, "-q", "--threshold", "loss<1%")
    assert strict.returncode == 1 and "failed: loss<1%" in strict.stdout, strict
    loose = run(*fanout, "-q", "--threshold", "loss<=100%")
    assert loose.returncode == 0, loose
    assert loose.stdout.startswith("hub bench fanout: ok: 2 of 2 sockets connected;"), loose


def test_no_connected_socket_fails_and_the_plurals_agree(tmp_path: Path) -> None:
    """Nothing listening: exit status 1, and the output counts in proper English."""
    port = free_port()
    result = run("conns", "--url", f"ws://127.0.0.1:{port}", "-n", "1", "--hold", "0.1")
    assert result.returncode == 1, result
    assert "warning: 1 connection failed: {'ConnectionRefusedError': 1}" in result.stdout
    assert result.stdout.splitlines()[-1] == (
        "hub bench conns: FAILED: 0 of 1 socket connected; failed: connected > 0"
    )
    assert "(s)" not in result.stdout


def test_duplicates_fail_unless_allowed(twice_url: str, tmp_path: Path) -> None:
    echo = ("echo", "--url", f"{twice_url}/d", "-n", "1", "-m", "20", "--procs", "1", "-q")
    result, report = run_json(tmp_path, *echo)
    # The last copy may come after the run has all it expected, and go uncounted.
    duplicates = report["messages"]["duplicates"]
    assert duplicates in (19, 20)
    assert report["messages"]["lost"] == 0
    assert result.returncode == 1, result
    assert f"{duplicates} duplicates" in result.stdout, result.stdout
    assert "failed: duplicates = 0" in result.stdout
    allowed = run(*echo, "--threshold", "duplicates<=20")
    assert allowed.returncode == 0, allowed


def test_reordering_fails_unless_allowed(swap_url: str, tmp_path: Path) -> None:
    """echo --rate sends on a schedule, without waiting for the previous echo: a server that
    swaps each pair reorders half of them."""
    echo = ("echo", "--url", f"{swap_url}/r", "-n", "1", "-m", "20", "--rate", "100")
    result, report = run_json(tmp_path, *echo, "--procs", "1", "-q")
    messages = report["messages"]
    assert (messages["sent"], messages["unique"], messages["lost"]) == (20, 20, 0)
    assert messages["reordered"] == 10
    assert result.returncode == 1, result
    assert "failed: reordered = 0" in result.stdout
    allowed = run(*echo, "--procs", "1", "-q", "--threshold", "reordered<=10")
    assert allowed.returncode == 0, allowed


def test_echo_rate_paces_the_round_trips(echo_url: str, tmp_path: Path) -> None:
    """--rate is messages per second over all clients, as fanout's is over all publishers:
    4 clients at 200/s in all send 50 each in about a second."""
    result, report = run_json(
        tmp_path,
        *("echo", "--url", f"{echo_url}/e", "-n", "4", "-m", "50", "--rate", "200"),
        *("--procs", "2", "-q"),
    )
    assert result.returncode == 0, result
    assert report["config"]["rate"] == 200.0
    messages = report["messages"]
    assert (messages["sent"], messages["received"], messages["lost"]) == (200, 200, 0)
    # The last message is due at 49/50 s; closed loop, 50 round trips take milliseconds.
    assert 0.9 <= report["measured_s"] < 0.9 + t(10)
    # The measured phase starts after the workers start and the sockets connect, and ends
    # before the report is read.
    window_end = report["measured_started_at"] + report["measured_s"]
    assert report["started_at"] < report["measured_started_at"] < window_end <= time.time()
    closed = run("echo", "--url", f"{echo_url}/e", "-n", "4", "-m", "50", "--procs", "1", "-q")
    assert closed.returncode == 0 and "200 of 200 expected deliveries" in closed.stdout


def test_help_names_the_protocols_and_the_default_verdict() -> None:
    top = subprocess.run(
        [sys.executable, "-m", "hub", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=t(60),
    )
    bench_line = " ".join(top.stdout.split("bench", 1)[1].split())
    assert "raw-mode" not in top.stdout
    assert "hub.v1" in bench_line and "Socket.IO" in bench_line
    assert "rate" in run("echo", "--help").stdout
    text = " ".join(run("--help").stdout.split())
    assert "Exit status 1 when no socket connected, or when any expected delivery was lost" in text
    assert "plot" in text
