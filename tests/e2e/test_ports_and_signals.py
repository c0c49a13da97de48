"""A port that is taken, --reuse-port, and SIGTERM in every state ``hub serve`` can be in.

Every hub here is a real ``hub serve`` process; each test bounds how long it may take to exit.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import psutil
import pytest
from support import ROOT, HubProcess, RedisServer, free_port, t, wait_until
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

#: How long a hub may take to refuse a taken port, or to stop after SIGTERM.
PROMPT_S = 5.0


def _listener(*, reuse_port: bool = False, port: int = 0) -> socket.socket:
    """A foreign program's listening socket on loopback (with SO_REUSEPORT, if asked)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


@pytest.fixture
def taken_port() -> Iterator[Callable[..., int]]:
    """Take a free loopback port with a listener of this test's own; closed at teardown."""
    socks: list[socket.socket] = []

    def take(*, reuse_port: bool = False) -> int:
        socks.append(_listener(reuse_port=reuse_port))
        port: int = socks[-1].getsockname()[1]
        return port

    yield take
    for sock in socks:
        sock.close()


@pytest.fixture
def hubs() -> Iterator[Callable[..., HubProcess]]:
    """Start ``hub serve`` processes without waiting for them; all are stopped at teardown."""
    started: list[HubProcess] = []

    def start(*args: str, port: int | None = None, api: bool = False) -> HubProcess:
        started.append(HubProcess(*args, port=port, api=api))
        return started[-1]

    yield start
    for hub in started:
        hub.stop()


def _exit_status(hub: HubProcess, within_s: float) -> int:
    """The hub's exit status; fail (and kill it) unless it exits within ``within_s``, scaled."""
    try:
        return hub.proc.wait(t(within_s))
    except subprocess.TimeoutExpired:
        for child in psutil.Process(hub.proc.pid).children(recursive=True):
            child.kill()  # its workers too: a stuck supervisor's workers may be stuck as well
        hub.proc.kill()
        hub.proc.wait()
        raise AssertionError(
            f"hub still running after {t(within_s):.1f}s:\n{hub.output()}"
        ) from None


def _sigterm_stops(hub: HubProcess) -> int:
    """SIGTERM the hub; it must exit within PROMPT_S, with no traceback. Its exit status."""
    start = time.monotonic()
    hub.signal(signal.SIGTERM)
    status = _exit_status(hub, PROMPT_S)
    output = hub.output()
    assert "Traceback" not in output, output
    assert time.monotonic() - start < t(PROMPT_S)
    return status


def _refused(hub: HubProcess, port: int, flag: str) -> str:
    """The hub exits on its own with status 2 and one line that names the port and listener."""
    status = _exit_status(hub, PROMPT_S)
    output = hub.output()
    assert status == 2, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if str(port) in line and flag in line]
    assert len(lines) == 1, output
    assert "in use" in lines[0], output
    return output


# A taken --port


@pytest.mark.parametrize("reuse_port_holder", [False, True], ids=["plain", "so_reuseport"])
@pytest.mark.parametrize(
    "workers, broker",
    [("1", "memory"), ("1", "redis"), ("2", "redis"), ("2", "embedded")],
)
def test_a_port_taken_by_another_program_is_refused(
    taken_port: Callable[..., int],
    hubs: Callable[..., HubProcess],
    redis_server: RedisServer,
    workers: str,
    broker: str,
    reuse_port_holder: bool,
) -> None:
    """Whoever holds --port, with or without SO_REUSEPORT, hub says so and exits 2, at once,
    before it connects to Redis or starts a redis-server."""
    port = taken_port(reuse_port=reuse_port_holder)
    args = ["--workers", workers]
    if broker == "redis":
        args += ["--redis", redis_server.url]
    output = _refused(hubs(*args, port=port), port, "--port")
    assert "redis subscriber connected" not in output
    assert "embedded redis-server" not in output


@pytest.mark.parametrize("holder_workers", ["1", "2"])
def test_a_second_hub_on_the_same_port_is_refused(
    start_hub: Callable[..., HubProcess],
    hubs: Callable[..., HubProcess],
    redis_server: RedisServer,
    holder_workers: str,
) -> None:
    """A second ``hub serve`` on a hub's port refuses to start; the first keeps serving."""
    first = start_hub("--workers", holder_workers, "--redis", redis_server.url)
    second = hubs("--workers", "2", "--redis", redis_server.url, port=first.port)
    _refused(second, first.port, "--port")
    assert first.is_ready()
    assert "in use" not in first.output()


def test_reuse_port_lets_two_hubs_share_a_port(
    hubs: Callable[..., HubProcess], redis_server: RedisServer
) -> None:
    """With --reuse-port (a blue/green switch) a second hub joins the first one's port, and
    serves on when the first one stops."""
    args = ("--workers", "1", "--redis", redis_server.url, "--reuse-port")
    blue = hubs(*args).wait_ready()
    green = hubs(*args, port=blue.port).wait_ready()
    assert _sigterm_stops(blue) == 0
    wait_until(green.is_ready, 5, "the green hub to answer alone")
    assert _sigterm_stops(green) == 0


def test_reuse_port_still_refuses_a_port_that_is_not_shared(
    taken_port: Callable[..., int], hubs: Callable[..., HubProcess]
) -> None:
    """--reuse-port cannot join a listener that did not set SO_REUSEPORT: hub says so."""
    port = taken_port()
    _refused(hubs("--workers", "2", "--reuse-port", port=port), port, "--port")


# A taken --api-port


@pytest.mark.parametrize("workers, broker", [("1", "memory"), ("1", "redis"), ("2", "redis")])
def test_a_taken_api_port_is_refused(
    taken_port: Callable[..., int],
    hubs: Callable[..., HubProcess],
    redis_server: RedisServer,
    workers: str,
    broker: str,
) -> None:
    """A taken --api-port is refused like a taken --port, and named as the API's."""
    api_port = taken_port()
    args = ["--workers", workers, "--api-port", str(api_port)]
    if broker == "redis":
        args += ["--redis", redis_server.url]
    output = _refused(hubs(*args), api_port, "--api-port")
    assert "redis subscriber connected" not in output


def test_reuse_port_still_refuses_an_api_port_that_is_not_shared(
    taken_port: Callable[..., int], hubs: Callable[..., HubProcess], redis_server: RedisServer
) -> None:
    """--reuse-port and an --api-port held by a listener that does not share it: refused
    before Redis, in one line, exit 2 (it used to connect to Redis and hang)."""
    api_port = taken_port()
    args = ("--workers", "1", "--redis", redis_server.url, "--reuse-port")
    output = _refused(hubs(*args, "--api-port", str(api_port)), api_port, "--api-port")
    assert "redis subscriber connected" not in output


# SIGTERM in every state


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A 'Redis' URL whose listener accepts connections and never replies."""
    sock = _listener()
    yield f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    sock.close()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_while_redis_refuses_connections(
    hubs: Callable[..., HubProcess], workers: str
) -> None:
    """Redis at a port where nothing listens: the hub retries, and SIGTERM stops it."""
    hub = hubs("--workers", workers, "--redis", f"redis://127.0.0.1:{free_port()}/0")
    wait_until(lambda: "cannot connect" in hub.output(), 10, "a failed connect")
    assert _sigterm_stops(hub) == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_while_redis_never_replies(
    hubs: Callable[..., HubProcess], silent_redis: str, workers: str
) -> None:
    """Redis accepts the connection and never answers: SIGTERM still stops the hub."""
    hub = hubs("--workers", workers, "--redis", silent_redis)
    wait_until(lambda: hub.output().count("serving ws://") == int(workers), 15, "the workers")
    assert _sigterm_stops(hub) == 0


#: A worker whose SIGTERM arrives inside the event loop's own set-up (uvloop's signal
#: socketpair), where one arrived in a CI run: the process must still stop cleanly.
_SIGTERM_IN_LOOP_SETUP = """
import os, signal, socket, sys
from hub.runtime.signals import exit_on_signals
exit_on_signals()
real, armed = socket.socketpair, []
def socketpair(*args, **kwargs):
    if armed and armed.pop():
        os.kill(os.getpid(), signal.SIGTERM)
    return real(*args, **kwargs)
socket.socketpair = socketpair
from hub.app import run_worker
from hub.core.config import Settings
settings = Settings.from_env({}, port=0)
armed.append(True)
sys.exit(run_worker(settings))
"""


def test_sigterm_while_the_event_loop_sets_up() -> None:
    """Held until the loop's handlers are in place, the signal stops the worker through
    them: status 0 and no traceback (it was SystemExit inside uvloop's set-up: status 1 and
    three tracebacks, 'Cannot close a running event loop')."""
    done = subprocess.run(
        [sys.executable, "-c", _SIGTERM_IN_LOOP_SETUP],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=t(30),
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_during_start_up(
    hubs: Callable[..., HubProcess], silent_redis: str, workers: str
) -> None:
    """SIGTERM before the hub serves (importing, connecting, binding) stops it too."""
    hub = hubs("--workers", workers, "--redis", silent_redis)
    time.sleep(0.8)
    assert _sigterm_stops(hub) in (0, -signal.SIGTERM)


@pytest.mark.parametrize("workers, broker", [("1", "memory"), ("2", "redis")])
async def test_sigterm_while_serving_a_client(
    hubs: Callable[..., HubProcess], redis_server: RedisServer, workers: str, broker: str
) -> None:
    """A serving hub with a client: the client sees 1001 and the hub exits 0 promptly."""
    args = ["--workers", workers] + (["--redis", redis_server.url] if broker == "redis" else [])
    hub = hubs(*args).wait_ready()
    async with connect(hub.url("news")) as ws:
        start = time.monotonic()
        hub.signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    assert _exit_status(hub, PROMPT_S - (time.monotonic() - start)) == 0
    assert "Traceback" not in hub.output()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_repeated_until_the_hub_has_exited(
    hubs: Callable[..., HubProcess], workers: str
) -> None:
    """A process manager that repeats SIGTERM (every 2 ms here) through the drain and the
    exit: the hub still exits 0, never -15, because its closed loop gave SIGTERM back."""
    hub = hubs("--workers", workers, "--drain-s", "0.3").wait_ready()
    deadline = time.monotonic() + t(PROMPT_S)
    while hub.proc.poll() is None:
        assert time.monotonic() < deadline, "the hub never exited"
        hub.signal(signal.SIGTERM)
        time.sleep(0.002)
    assert hub.proc.returncode == 0
    assert "Traceback" not in hub.output()
