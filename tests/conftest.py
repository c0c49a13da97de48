"""Shared fixtures: real redis-server and hub processes on free loopback ports."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

#: Every wait in the suite is a multiple of this; raise it on slow machines.
SCALE = float(os.environ.get("HUB_TEST_TIMEOUT_SCALE", "1"))
ROOT = Path(__file__).resolve().parent.parent


def t(seconds: float) -> float:
    """A timeout, scaled by HUB_TEST_TIMEOUT_SCALE."""
    return seconds * SCALE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + t(timeout)
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {t(timeout):.1f}s waiting for {what}")


async def async_wait_until(cond: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + t(timeout)
    while time.monotonic() < deadline:
        result = cond()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {t(timeout):.1f}s waiting for {what}")


def redis_server_path() -> str:
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(exe).exists():
        raise RuntimeError(
            "redis-server is not installed; run ./scripts/test.sh, which installs it"
        )
    return exe


class RedisServer:
    """A real redis-server on a free loopback port; stop and start it again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="hub-test-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                redis_server_path(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_until(self.ping, 10, f"redis-server on port {self.port}")

    def ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class HubProcess:
    """A real ``hub serve`` process."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.args = ["--port", str(self.port), *args]
        self.log = tempfile.NamedTemporaryFile(prefix="hub-test-", suffix=".log", delete=False)
        full_env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub", "serve", *self.args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=ROOT,
        )

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def is_serving(self) -> bool:
        try:
            return self.http("/healthz")[0] == 200
        except OSError:
            return False

    def is_ready(self) -> bool:
        try:
            return self.http("/readyz")[0] == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 15) -> HubProcess:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"hub exited with {self.proc.returncode}:\n{self.output()}")
            return self.is_ready()

        wait_until(ready, timeout, f"hub on port {self.port} to be ready")
        return self

    def url(self, channel: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/{channel}"

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(t(15))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the tests that do not stop it."""
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may kill and restart."""
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def start_hub() -> Iterator[Callable[..., HubProcess]]:
    """Start ``hub serve`` processes; all are stopped at teardown."""
    hubs: list[HubProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, wait: bool = True) -> HubProcess:
        hub = HubProcess(*args, env=env)
        hubs.append(hub)
        return hub.wait_ready() if wait else hub

    yield start
    for hub in hubs:
        hub.stop()


@pytest.fixture
def hub_pair(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess]
) -> tuple[HubProcess, HubProcess]:
    """Two single-worker hub instances sharing one redis-server, with a unique prefix."""
    prefix = f"t{free_port()}:"
    args = ("--redis", redis_server.url, "--workers", "1", "--channel-prefix", prefix)
    return start_hub(*args), start_hub(*args)
