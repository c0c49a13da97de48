"""What the Redis broker's connections share: where Redis is, the process's name, reconnects
with backoff, and the supervision of their loops."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import hiredis

from hub.brokers.resp import Connection, Endpoint, Reply, open_connection
from hub.core.backoff import backoff

__all__ = ["RECONNECT_MAX_S", "Attach", "LogGate", "RedisLink"]

#: Opens a role's connection to an endpoint: (role, endpoint, on_replies) → connection.
Attach = Callable[[str, Endpoint, Callable[[list[Reply]], None]], Awaitable[Connection]]

logger = logging.getLogger(__name__)

#: The reconnect backoff's ceiling: every process retries at least this often.
RECONNECT_MAX_S = 2.0


class LogGate:
    """One line per kind of event and endpoint every ``interval_s``: the partitions of a
    Redis Cluster broker share one, so a node's failure is a line, not a hundred a second."""

    def __init__(self, interval_s: float = 5.0) -> None:
        self.interval_s = interval_s
        self._last: dict[tuple[str, str], float] = {}

    def allow(self, what: str, where: str) -> bool:
        now = time.monotonic()
        if now - self._last.get((what, where), -self.interval_s) < self.interval_s:
            return False
        self._last[(what, where)] = now
        return True


class RedisLink:
    """One Redis endpoint as this process reaches it. With ``locate`` (Sentinel, Cluster),
    where the master is gets asked again before every connect. With ``attach`` (Cluster),
    connections are shares of one connection per node and role. With ``gate``, repeated
    events are logged once per interval and connects only at debug level (the partitions
    of a cluster broker, which log a summary of their own)."""

    def __init__(
        self,
        endpoint: Endpoint,
        name: str,
        locate: Callable[[], Awaitable[Endpoint]] | None = None,
        gate: LogGate | None = None,
        attach: Attach | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.name = name
        self.is_closing = False
        self._locate = locate
        self._gate = gate
        self._attach = attach

    def log(self, level: int, what: str, message: str, *args: object) -> None:
        """Log an event of kind ``what`` (through the gate, when there is one)."""
        if self._gate is not None:
            if not self._gate.allow(what, self.endpoint.describe()):
                return
            if what == "connected":
                level = logging.DEBUG
        logger.log(level, message, *args)

    async def connect(self, role: str, on_replies: Callable[[list[Reply]], None]) -> Connection:
        """Connect with backoff until it works (or the broker closes)."""
        delays = backoff(max_s=RECONNECT_MAX_S)
        while True:
            # The endpoint this try dials: another role may move the shared one meanwhile.
            dialled = self.endpoint
            try:
                if self._locate is not None:
                    self.endpoint = dialled = await self._locate()
                if self._attach is not None:  # a share of a node's connection (Cluster)
                    return await self._attach(role, dialled, on_replies)
                return await open_connection(dialled, on_replies, name=f"{self.name}-{role}")
            except (TimeoutError, OSError, hiredis.ReplyError) as exc:  # NoMaster is an OSError
                delay = next(delays)
                self.log(
                    logging.WARNING,
                    "cannot connect",
                    "redis %s: cannot connect to %s (%s); retrying in %.2fs",
                    role,
                    dialled.describe(),
                    str(exc) or type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)

    async def supervise(self, what: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run a background loop for the broker's lifetime; a crash is logged and restarted."""
        while not self.is_closing:
            try:
                await run()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("redis %s task crashed; restarting it", what)
                await asyncio.sleep(0.5)
