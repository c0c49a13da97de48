"""Redis' memory, clients and channels for /stats: asked in the background, at most every
``REDIS_REFRESH_S``, so that /stats answers at once with the last answer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

__all__ = ["REDIS_REFRESH_S", "RedisFigures"]

logger = logging.getLogger("hub.metrics")

#: How often, at most, the answering worker asks Redis for its memory, clients and channels.
REDIS_REFRESH_S = 5.0


class RedisFigures:
    """The last answer of ``ask`` (see ``App``), or None with the memory broker."""

    def __init__(self, ask: Callable[[], Awaitable[dict[str, Any]]] | None) -> None:
        self._ask = ask
        self._answer: dict[str, Any] | None = None
        self._at = 0.0
        self._task: asyncio.Task[None] | None = None

    def _refresh(self) -> None:
        """Ask Redis again in the background if the last answer is old: /stats answers at
        once with the last one (the dashboard polls every second)."""
        if self._ask is None or time.monotonic() - self._at < REDIS_REFRESH_S:
            return
        if self._task is not None and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # outside the event loop (a test): nothing to run it on
        self._at = time.monotonic()
        self._task = loop.create_task(self._ask_redis(self._ask))

    async def _ask_redis(self, ask: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        try:
            answer = await asyncio.wait_for(ask(), REDIS_REFRESH_S)
        except Exception as exc:
            logger.debug("asking Redis for /stats failed", exc_info=True)
            self._answer = {"error": f"{type(exc).__name__}: {exc}"[:200], "at": time.time()}
        else:
            self._answer = {**answer, "at": time.time()}

    def stats(self) -> tuple[dict[str, Any] | None, Mapping[str, int]]:
        """The last answer of Redis, for /stats, and its processes per channel."""
        self._refresh()
        if self._ask is None:
            return None, {}
        if self._answer is None:
            return {"pending": True}, {}
        answer = dict(self._answer)
        processes: Mapping[str, int] = answer.pop("channel_processes", {})
        answer["age_s"] = round(time.time() - answer.pop("at"), 1)
        return answer, processes
