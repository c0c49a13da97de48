"""The ``vu`` a script's ``async def user(vu)`` gets: one virtual user, kept across its
iterations. docs/bench.md ("Scripts") has the table of what it offers."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from hub.bench.script.conn import Conn, ConnectError, Predicate
from hub.bench.script.totals import Collector

if TYPE_CHECKING:
    from hub.bench.script.protocols import HubV1Conn, SocketIOConn  # noqa: F401

__all__ = ["VU", "Opener", "Trend"]


class Opener(Protocol):
    """What opens a VU's connections (the engine, ``run.py``)."""

    async def open(
        self,
        vu: VU,
        url: str | None,
        subprotocols: tuple[str, ...],
        headers: dict[str, str],
        protocol: str | None,
    ) -> Conn: ...


class Trend:
    """A custom trend: ``vu.metric("room_join").add(ms)``, or ``with ...time():``."""

    __slots__ = ("_collector", "name")

    def __init__(self, collector: Collector, name: str) -> None:
        self._collector = collector
        self.name = name

    def add(self, ms: float) -> None:
        """One value, in milliseconds."""
        self._collector.add(self.name, ms)

    @contextlib.contextmanager
    def time(self) -> Iterator[None]:
        """Time the block (awaits included) into the trend."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add((time.perf_counter() - started) * 1000)


class VU:
    """One virtual user: ``id`` (0 .. VUs-1 over all workers), ``iteration`` (its own count,
    from 0), ``data`` (its ``--data`` row), and what it can do."""

    def __init__(self, opener: Opener, collector: Collector, vu_id: int, data: dict[str, str]):
        self.id = vu_id
        self.iteration = -1
        self.data = data
        self._opener = opener
        self._collector = collector
        self.conns: list[Conn] = []  # this iteration's, closed when it ends
        self.stopping = False  # ramping down: this iteration is its last

    async def connect(
        self,
        url: str | None = None,
        *,
        subprotocols: list[str] | tuple[str, ...] = (),
        headers: dict[str, str] | None = None,
        protocol: str | None = None,
    ) -> Any:
        """Open a connection: ``url`` whole (ws://, wss://), a path on the run's --url
        ("/room-1"), or None for the --url itself. ``protocol``: raw, hub.v1 or socketio
        (default: --protocol). Raises ConnectError when it fails (counted)."""
        conn = await self._opener.open(self, url, tuple(subprotocols), headers or {}, protocol)
        self.conns.append(conn)
        return conn

    def _last(self) -> Conn:
        if not self.conns:
            raise ConnectError("vu.send/expect before vu.connect: no connection yet")
        return self.conns[-1]

    def send(self, data: object) -> None:
        """Send on the latest connection (see Conn.send)."""
        self._last().send(data)

    async def expect(self, predicate: Predicate | None = None, timeout: float = 5.0) -> Any:  # noqa: ASYNC109
        """Wait on the latest connection for a frame that matches (see Conn.expect)."""
        return await self._last().expect(predicate, timeout)

    async def sleep(self, seconds: float, max_seconds: float | None = None) -> None:
        """Think time: ``seconds``, or a random time between it and ``max_seconds``."""
        if max_seconds is not None:
            seconds = random.uniform(seconds, max_seconds)
        await asyncio.sleep(seconds)

    def check(self, name: str, ok: object) -> bool:
        """Count a check by name (the 'checks' threshold is their pass rate); returns ok."""
        passed = bool(ok)
        self._collector.check(name, passed)
        return passed

    def metric(self, name: str) -> Trend:
        """A custom trend, in milliseconds: thresholds read it as NAME.p95 and so on."""
        return Trend(self._collector, name)

    def close_all(self) -> None:
        for conn in self.conns:
            conn.close()
        self.conns.clear()
