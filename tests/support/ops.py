"""Helpers for the metrics, dashboard and logging tests: async HTTP against a hub, its
parsed /metrics and /stats. The processes themselves are support.py's."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from support.processes import HubProcess
from support.waits import async_wait_until, t

__all__ = ["http_get", "scrape", "stats", "total", "wait_workers_ready"]


async def wait_workers_ready(hub: HubProcess, num_workers: int, timeout_s: float = 30) -> None:
    """Wait until every worker reports a ready broker (/readyz needs only one)."""

    async def all_ready() -> bool:
        try:
            doc = await stats(hub.port)
        except OSError:
            return False
        return bool(doc["totals"]["workers_ready"] == num_workers)

    await async_wait_until(all_ready, timeout_s, f"{num_workers} ready workers on port {hub.port}")


async def http_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """One GET over a fresh loopback connection: (status, headers in lower case, body)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), t(5))
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        raw = await asyncio.wait_for(reader.read(), t(10))
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


def readiness_log(hub: HubProcess, stop: threading.Event) -> list[tuple[float, int]]:
    """Poll the hub's /readyz every 20 ms in a thread until ``stop``: (time, status)."""
    log: list[tuple[float, int]] = []

    def poll() -> None:
        while not stop.wait(0.02):
            try:
                with urllib.request.urlopen(hub.base_url + "/readyz", timeout=1) as r:
                    log.append((time.monotonic(), r.status))
            except urllib.error.HTTPError as exc:
                log.append((time.monotonic(), exc.code))
            except OSError:
                pass

    threading.Thread(target=poll, daemon=True).start()
    return log
