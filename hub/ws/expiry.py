"""A connection's expiry: one timer per connection at its token's ``exp`` (nothing polls),
closing it with 4001 then, or, for a connection the connect hook let in, asking the refresh
hook to extend it a little before."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from hub.core.auth import Grant
from hub.core.errors import CloseCode
from hub.core.hooks import HookRefused, HookUnavailable

__all__ = ["REFRESH_AHEAD_S", "Expiry"]

logger = logging.getLogger(__name__)

#: How long before a connect hook's ``expire_at`` the refresh hook is asked (or half the
#: remaining lifetime, if shorter).
REFRESH_AHEAD_S = 10.0


class Closable(Protocol):
    def disconnect(self, code: int, reason: str) -> None: ...


class Expiry:
    """One timer per connection at its expiry (nothing polls). A JWT's expiry closes the
    connection with 4001 then; a connect hook's is extended by ``refresh`` (the refresh
    hook), asked a little before it, and closes with 4001 only if the hook does not extend
    it. A refresh op (a new JWT) moves it with ``set_from``."""

    __slots__ = ("_client", "_refresh", "_task", "_timer", "exp")

    def __init__(
        self, client: Closable, refresh: Callable[[float], Awaitable[float]] | None
    ) -> None:
        self._client = client
        self._refresh = refresh
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self.exp: float | None = None

    def set_from(self, grant: Grant) -> None:
        """A refresh op swapped the connection's JWT: its expiry, and no more hook refresh."""
        self._refresh = None
        self.set(grant.exp)

    def set(self, exp: float | None) -> None:
        self.cancel()
        self.exp = exp
        if exp is None:
            return
        loop = asyncio.get_running_loop()
        left = max(0.0, exp - time.time())
        if self._refresh is not None:
            ahead = min(REFRESH_AHEAD_S, left / 2)
            self._timer = loop.call_later(left - ahead, self._ask)
        else:
            self._timer = loop.call_later(left, self._expire)

    def _expire(self) -> None:
        self._client.disconnect(CloseCode.TOKEN_EXPIRED, "token expired")

    def _ask(self) -> None:
        self._task = asyncio.create_task(self._extend())

    async def _extend(self) -> None:
        exp = self.exp
        assert exp is not None and self._refresh is not None
        try:
            new = await self._refresh(exp)
        except (HookRefused, HookUnavailable) as exc:
            logger.info("the connection's expiry was not extended: %s", exc)
            new = exp
        except Exception:
            logger.exception("the refresh hook's call failed")
            new = exp
        self._task = None
        if new > exp and new > time.time():
            self.set(new)
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0.0, exp - time.time()), self._expire)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            self._task = None
