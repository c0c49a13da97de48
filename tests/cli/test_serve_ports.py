"""``hub serve``'s port claim (hub.runtime.ports), and a worker whose bind fails after all."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
from support import ROOT, RedisServer, clean_env, free_port, t

from hub.core.config import Settings
from hub.runtime.ports import CannotListen, claim_ports


def _listen(*, reuse_port: bool = False) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.fixture
def held() -> Iterator[socket.socket]:
    """A port that a listener of this test holds, with SO_REUSEPORT (as hub's workers do)."""
    with _listen(reuse_port=True) as sock:
        yield sock


def test_free_ports_are_claimed_and_released() -> None:
    """A free --port and --api-port pass; the claim holds them against a second hub only
    until it is closed."""
    settings = Settings(port=free_port(), api_port=free_port())
    with claim_ports(settings):
        with pytest.raises(CannotListen):
            claim_ports(settings)
    claim_ports(settings).close()


def test_a_concurrent_second_hub_is_refused_by_the_lock() -> None:
    """Two hubs that both probe a free port before either binds it: the second one's lock
    fails, so they cannot end up sharing it."""
    port = free_port()
    with claim_ports(Settings(port=port)):
        with pytest.raises(CannotListen) as info:
            claim_ports(Settings(port=port))
    assert f"WebSocket port {port} (--port) on 127.0.0.1 is already in use" in str(info.value)


def test_a_listener_with_so_reuseport_is_found(held: socket.socket) -> None:
    """A plain bind fails against a listener that set SO_REUSEPORT: no silent sharing."""
    port = held.getsockname()[1]
    with pytest.raises(CannotListen) as info:
        claim_ports(Settings(port=port))
    assert "--reuse-port" in str(info.value) and "\n" not in str(info.value)


def test_reuse_port_joins_a_listener_that_shares(held: socket.socket) -> None:
    """With --reuse-port the same port passes (and takes no lock)."""
    claim_ports(Settings(port=held.getsockname()[1], reuse_port=True)).close()


def test_reuse_port_refuses_a_listener_that_does_not_share() -> None:
    with _listen() as sock:
        port = sock.getsockname()[1]
        with pytest.raises(CannotListen) as info:
            claim_ports(Settings(api_port=port, port=free_port(), reuse_port=True))
    assert f"HTTP API port {port} (--api-port)" in str(info.value)
    assert "does not share it" in str(info.value)


def test_port_0_is_not_checked() -> None:
    claim_ports(Settings(port=0)).close()


def test_an_address_that_is_not_here_is_one_line() -> None:
    """Not only EADDRINUSE: a --host that is no local address also says what and where."""
    with pytest.raises(CannotListen) as info:
        claim_ports(Settings(host="192.0.2.1", port=free_port()))
    assert str(info.value).startswith("cannot listen on WebSocket port")


# A bind that fails in the worker after all (another process took the port after the check)

_SERVE_WITHOUT_THE_CHECK = textwrap.dedent(
    """
    import sys
    import hub.cli
    import hub.runtime.ports as ports
    ports.claim_ports = lambda settings: ports.PortClaim([])
    sys.exit(hub.cli.main(["serve", *sys.argv[1:]]))
    """
)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_bind_that_fails_after_redis_connected_exits_2(
    redis_server: RedisServer, workers: str
) -> None:
    """The API port is taken by the time the worker binds it (the check is skipped here): the
    worker has connected to Redis, and still stops everything it started and exits 2 with one
    line, instead of hanging in a shutdown that waits for the broker's tasks."""
    with _listen() as taken:
        api_port = taken.getsockname()[1]
        args = ["--workers", workers, "--redis", redis_server.url, "--port", str(free_port())]
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-c", _SERVE_WITHOUT_THE_CHECK, *args, "--api-port", str(api_port)],
            capture_output=True,
            text=True,
            timeout=t(15),
            cwd=ROOT,
            env=clean_env(),
        )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert time.monotonic() - start < t(10)
    assert "Traceback" not in output
    assert "redis subscriber connected" in output
    lines = [line for line in output.splitlines() if f"port {api_port} (--api-port)" in line]
    assert len(lines) == int(workers), output  # each worker says it once
    assert all("ERROR" in line and "already in use" in line for line in lines), output
    if workers == "2":
        assert "cannot listen; stopping the hub" in output


def test_a_worker_that_does_not_stop_in_time_exits_anyway() -> None:
    """The shutdown deadline ends a worker whose teardown hangs, with status 1."""
    code = "from hub.app import _exit_after; import time; _exit_after(0.2, 0, 0); time.sleep(30)"
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=t(10), cwd=ROOT
    )
    assert proc.returncode == 1
    assert time.monotonic() - start < t(5)
    assert "did not stop within 0.2s" in proc.stderr
