"""Test plumbing shared by every test module: scaled waits, free ports, and real
redis-server and ``hub serve`` processes, each stopped by its pid."""

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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

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


def poll_until(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``cond`` until it holds; fail after ``timeout_s`` seconds (already scaled)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s:.1f}s waiting for {what}")


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``cond`` until it holds; fail after ``timeout`` seconds, scaled."""
    poll_until(cond, t(timeout), what)


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM this one process, then SIGKILL it if it does not exit in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout_s)


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
        self._kill()

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        self._kill()
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
        stop_process(self.proc, t(15))
        self.log.close()
        os.unlink(self.log.name)
