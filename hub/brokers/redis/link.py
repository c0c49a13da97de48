"""What the Redis broker's connections share: where Redis is, the process's name, reconnects
with backoff, and the supervision of their loops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import hiredis

from hub.brokers.resp import Endpoint, Reply, RespConnection, open_connection
from hub.core.backoff import backoff

__all__ = ["RECONNECT_MAX_S", "RedisLink"]

logger = logging.getLogger(__name__)

#: The reconnect backoff's ceiling: every process retries at least this often.
RECONNECT_MAX_S = 2.0


class RedisLink:
    """One Redis endpoint as this process reaches it. With ``locate`` (Sentinel), where the
    master is gets asked again before every connect."""

    def __init__(
        self,
        endpoint: Endpoint,
        name: str,
        locate: Callable[[], Awaitable[Endpoint]] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.name = name
        self.is_closing = False
        self._locate = locate

    async def connect(self, role: str, on_replies: Callable[[list[Reply]], None]) -> RespConnection:
        """Connect with backoff until it works (or the broker closes)."""
        delays = backoff(max_s=RECONNECT_MAX_S)
        while True:
            try:
                if self._locate is not None:
                    self.endpoint = await self._locate()
                return await open_connection(self.endpoint, on_replies, name=f"{self.name}-{role}")
            except (TimeoutError, OSError, hiredis.ReplyError) as exc:  # NoMaster is an OSError
                delay = next(delays)
                logger.warning(
                    "redis %s: cannot connect to %s (%s); retrying in %.2fs",
                    role,
                    self.endpoint.describe(),
                    exc or type(exc).__name__,
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
