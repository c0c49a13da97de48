"""Helpers for the metrics, dashboard and logging tests: real redis-server and hub processes.

Every process is started here and stopped here, by its pid. Waits are bounded and scaled
by ``HUB_TEST_TIMEOUT_SCALE`` (a slow CI machine sets it to 2 or 3).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families
from support import RedisServer, free_port, stop_process, t

__all__ = [
    "HubProcess",
    "RedisProcess",
    "free_port",
    "http_get",
    "scale",
    "scrape",
    "stats",
    "total",
    "wait_until",
]


def scale(seconds: float) -> float:
    """A timeout of ``seconds`` on a normal machine, scaled for this one."""
    return t(seconds)


class RedisProcess(RedisServer):
    """support.RedisServer, started at once and removed at stop."""

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.start()

    def stop(self) -> None:
        self.close()


class HubProcess:
    """``python -m hub serve ...`` on a free port, its stderr in a file."""

    def __init__(self, args: Iterable[str], logdir: Path, *, port: int | None = None) -> None:
        self.port = port or free_port()
        logdir.mkdir(parents=True, exist_ok=True)
        self.log_path = logdir / f"hub-{self.port}.log"
        self._log = self.log_path.open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hub",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, channel: str) -> str:
        return f"ws://127.0.0.1:{self.port}/{channel}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_healthy(self, timeout_s: float = 20) -> None:
        async def healthy() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}:\n{self.log()}")
            try:
                status, _, _ = await http_get(self.port, "/healthz")
            except OSError:
                return False
            return status == 200

        await wait_until(healthy, timeout_s, f"hub on port {self.port} to answer /healthz")

    async def wait_ready(self, timeout_s: float = 20) -> None:
        async def ready() -> bool:
            try:
                status, _, _ = await http_get(self.port, "/readyz")
            except OSError:
                return False
            return status == 200

        await wait_until(ready, timeout_s, f"hub on port {self.port} to answer /readyz")

    async def wait_workers_ready(self, num_workers: int, timeout_s: float = 30) -> None:
        """Wait until every worker reports a ready broker (/readyz needs only one)."""

        async def all_ready() -> bool:
            try:
                doc = await stats(self.port)
            except OSError:
                return False
            return bool(doc["totals"]["workers_ready"] == num_workers)

        await wait_until(all_ready, timeout_s, f"{num_workers} ready workers on port {self.port}")

    def stop(self) -> int | None:
        stop_process(self.proc, scale(15))
        self._log.close()
        return self.proc.returncode


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], timeout_s: float, what: str, interval_s: float = 0.05
) -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout_s`` (scaled)."""
    deadline = time.monotonic() + scale(timeout_s)
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {scale(timeout_s):.1f}s waiting for {what}")
        await asyncio.sleep(interval_s)


async def http_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """One GET over a fresh loopback connection: (status, headers in lower case, body)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), scale(5))
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        raw = await asyncio.wait_for(reader.read(), scale(10))
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


async def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """GET /metrics, parsed: sample name → [(labels, value)]."""
    status, _, body = await http_get(port, "/metrics")
    assert status == 200, body
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            samples.setdefault(s.name, []).append((dict(s.labels), s.value))
    return samples


def total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    return sum(value for _, value in samples.get(name, []))


async def stats(port: int) -> dict[str, Any]:
    status, headers, body = await http_get(port, "/stats")
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    doc: dict[str, Any] = orjson.loads(body)
    return doc
