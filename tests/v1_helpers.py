"""Small helpers for the hub.v1 tests: a redis-server and ``hub serve`` processes on free
loopback ports, each stopped by its pid. Waits scale with HUB_TEST_TIMEOUT_SCALE."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support import SCALE, free_port, poll_until, stop_process
from support import RedisServer as BaseRedisServer

#: The unit of every wait in these tests, in seconds.
UNIT = 5.0 * SCALE
HOST = "127.0.0.1"


def wait_for(condition: Callable[[], bool], timeout: float = UNIT, what: str = "") -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds (already scaled)."""
    poll_until(condition, timeout, what or str(condition))


class Process:
    """A child process that is stopped by its pid."""

    def __init__(self, args: list[str], log: Path, **kwargs: Any) -> None:
        self.args = args
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, **kwargs)

    def stop(self) -> None:
        stop_process(self.proc, UNIT * 2)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class RedisServer(BaseRedisServer):
    """support.RedisServer, started at once; ``stop`` removes it."""

    def __init__(self, tmp: Path) -> None:
        super().__init__()
        self.start()

    def stop(self) -> None:
        self.close()


class HubServer(Process):
    """``hub serve --workers 1`` on a free port; ``api_port`` is set when asked for."""

    def __init__(self, tmp: Path, redis_url: str, *extra: str, api: bool = False) -> None:
        self.port = free_port()
        self.api_port = free_port() if api else 0
        args = [sys.executable, "-m", "hub", "serve", "--port", str(self.port)]
        args += ["--redis", redis_url, "--workers", "1", "--unsubscribe-delay-s", "0.2"]
        if api:
            args += ["--api-port", str(self.api_port)]
        args += list(extra)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        super().__init__(args, tmp / f"hub-{self.port}.log", env=env)
        self.url = f"ws://{HOST}:{self.port}"
        self.api_url = f"http://{HOST}:{self.api_port}"
        wait_for(self._is_ready, what=f"hub on port {self.port}")

    def _is_ready(self) -> bool:
        assert self.proc.poll() is None, self.log()
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.port}/readyz", timeout=1) as r:
                ready: bool = r.status == 200
        except (OSError, urllib.error.HTTPError):
            return False
        if ready and self.api_port:
            try:
                socket.create_connection((HOST, self.api_port), timeout=0.5).close()
            except OSError:
                return False
        return ready


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """(status, parsed JSON body) of one HTTP request; errors are returned, not raised."""
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=UNIT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw
