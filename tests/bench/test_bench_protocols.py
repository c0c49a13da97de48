"""hub bench --protocol over real servers: a hub spoken to in hub.v1, and a python-socketio
server under uvicorn, each measured with exact counts; and a protocol the server does not
speak, which fails with a message instead of hanging."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import ROOT, free_port, stop_process, t
from test_bench_e2e import wait_listening
from test_bench_targets import bench, echo_server, start_echo  # noqa: F401 - a fixture

SOCKETIO_SERVER = Path(__file__).with_name("socketio_server.py")


def serve(command: list[str], port: int) -> Iterator[str]:
    process = subprocess.Popen(command, cwd=ROOT)
    try:
        wait_listening(port, process, t(20))
        yield f"ws://127.0.0.1:{port}"
    finally:
        stop_process(process, t(10))


@pytest.fixture
def socketio_url() -> Iterator[str]:
    port = free_port()
    yield from serve([sys.executable, str(SOCKETIO_SERVER), "--port", str(port)], port)


@pytest.fixture
def pinging_socketio_url() -> Iterator[str]:
    """A Socket.IO server that pings every 0.3 s and drops a socket that does not answer."""
    port = free_port()
    command = [sys.executable, str(SOCKETIO_SERVER), "--port", str(port), "--ping-interval", "0.3"]
    yield from serve(command, port)


@pytest.fixture
def hub_url() -> Iterator[str]:
    port = free_port()
    yield from serve(
        [sys.executable, "-m", "hub", "serve", "--workers", "1", "--port", str(port)], port
    )


def assert_exact(report: dict[str, Any], connected: int, sent: int, received: int) -> None:
    messages = report["messages"]
    assert report["connections"]["connected"] == connected
    assert messages["sent"] == sent
    assert (messages["received"], messages["unique"]) == (received, received)
    assert (messages["lost"], messages["duplicates"], messages["reordered"]) == (0, 0, 0)
    # The protocol's own frames (acks, placeholders, pings) are neither messages nor "other".
    assert (messages["other_frames"], messages["foreign"]) == (0, 0)
    assert messages["frames_received"] == received
    assert report["latency_us"]["count"] == received


FANOUT = ["fanout", "-n", "8", "-p", "2", "-m", "200", "--rate", "400", "--procs", "2"]


@pytest.mark.parametrize("client", ["lean", "picows"])
def test_socketio_fanout_in_a_room(socketio_url: str, tmp_path: Path, client: str) -> None:
    """Every subscriber joins the room with an acked event, then gets every message of both
    publishers once and in order, relayed by python-socketio as binary attachments."""
    rc, report, stderr = bench(
        tmp_path,
        *FANOUT,
        "--url",
        socketio_url,
        "--protocol",
        "socketio",
        "--join-event",
        "join",
        "--client",
        client,
        "--strict",
    )
    assert rc == 0, stderr
    assert report["config"]["protocol"] == "socketio"
    assert_exact(report, connected=10, sent=200, received=8 * 200)
    assert report["messages"]["sent_by_publisher"] == {"0": 100, "1": 100}


def test_socketio_fanout_without_rooms(socketio_url: str, tmp_path: Path) -> None:
    """Without --join-event, a socket counts once the namespace connect is answered."""
    rc, report, stderr = bench(
        tmp_path, *FANOUT, "--url", socketio_url, "--protocol", "socketio", "--strict"
    )
    assert rc == 0, stderr
    assert_exact(report, connected=10, sent=200, received=8 * 200)


@pytest.mark.parametrize("client", ["lean", "picows"])
def test_socketio_pings_are_answered(
    pinging_socketio_url: str, tmp_path: Path, client: str
) -> None:
    """Over a run of many ping intervals, every socket answers each Engine.IO ping: none is
    dropped, nothing is lost."""
    rc, report, stderr = bench(
        tmp_path,
        *("fanout", "-n", "4", "-m", "150", "--rate", "60", "--procs", "1"),
        *("--url", pinging_socketio_url, "--protocol", "socketio", "--client", client),
        "--strict",
    )
    assert rc == 0, stderr
    assert report["connections"]["disconnected"] == 0
    assert_exact(report, connected=5, sent=150, received=4 * 150)


@pytest.mark.parametrize("client", ["lean", "picows"])
def test_hubv1_fanout(hub_url: str, tmp_path: Path, client: str) -> None:
    """hub.v1: subscribe frames to join, binary publish frames to send, base64 deliveries."""
    rc, report, stderr = bench(
        tmp_path,
        *FANOUT,
        "--url",
        hub_url,
        "--protocol",
        "hub.v1",
        "--client",
        client,
        "--strict",
    )
    assert rc == 0, stderr
    assert_exact(report, connected=10, sent=200, received=8 * 200)


@pytest.mark.parametrize(
    ("protocol", "server", "join"),
    [("hub.v1", "hub_url", []), ("socketio", "socketio_url", ["--join-event", "join"])],
)
def test_echo_broadcast_all_and_conns(
    protocol: str, server: str, join: list[str], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The other scenarios speak the protocol too, with their exact counts."""
    url = request.getfixturevalue(server)
    common = ["--url", url, "--procs", "1", "--protocol", protocol, *join, "--strict"]
    rc, report, stderr = bench(tmp_path, "echo", "-n", "5", "-m", "20", *common)
    assert rc == 0, stderr
    assert_exact(report, connected=5, sent=100, received=100)
    rc, report, stderr = bench(
        tmp_path, "broadcast-all", "-n", "12", "--channels", "3", "--rounds", "3", *common
    )
    assert rc == 0, stderr
    assert report["connections"]["connected"] == 12
    assert [(r["received"], r["expected"]) for r in report["rounds"]] == [(12, 12)] * 3
    rc, report, stderr = bench(tmp_path, "conns", "-n", "20", "--hold", "1", *common)
    assert rc == 0, stderr
    assert report["connections"]["connected"] == 20


def test_socketio_against_a_server_that_is_not(
    echo_server: tuple[str, Path],  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    """A plain websockets server never sends the Engine.IO open packet: every socket fails,
    named for what was missing, and the run exits 1 without a traceback."""
    url, _log = echo_server
    rc, report, stderr = bench(
        tmp_path,
        *("fanout", "-n", "3", "-m", "10", "--procs", "1", "--url", f"{url}/socket.io/"),
        *("--protocol", "socketio", "--connect-timeout", "2"),
    )
    assert rc == 1
    assert report["connections"]["connected"] == 0
    (error,) = report["connections"]["errors"]
    assert "Socket.IO open packet" in error
    assert "Traceback" not in stderr


@pytest.mark.parametrize("client", ["lean", "picows"])
def test_a_socket_closed_during_the_join_fails_at_once(tmp_path: Path, client: str) -> None:
    """A server that closes each socket after the upgrade fails it then, saying so, not after
    --connect-timeout."""
    for url, _log in start_echo(tmp_path, False, "--close"):
        rc, report, stderr = bench(
            tmp_path,
            *("fanout", "-n", "3", "-m", "10", "--procs", "1", "--url", f"{url}/socket.io/"),
            *("--protocol", "socketio", "--connect-timeout", "60", "--client", client),
        )
        assert rc == 1
        assert report["connections"]["connected"] == 0
        assert report["connections"]["connect_s"] < 30
        (error,) = report["connections"]["errors"]
        assert "closed the socket before the Socket.IO open packet" in error
        assert "Traceback" not in stderr
