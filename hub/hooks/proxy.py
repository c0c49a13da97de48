"""One worker's calls to the backend's hooks: one aiohttp session with keep-alive, a timeout
per call, every failure turned into one ``HookUnavailable`` with a cause.

The shapes of the requests and answers are ``hub.core.hooks`` (pure); this module only does
the I/O, counts each call (plain ints, copied into Prometheus by ``hub.metrics``) and times
it (``on_latency``, a Prometheus histogram's ``observe`` fed by ``hub.app``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

import aiohttp

from hub.core.envelope import Envelope
from hub.core.hooks import (
    BAD_JSON,
    CONNECT,
    CONNECTION,
    HOOKS,
    PUBLISH,
    REFRESH,
    RPC,
    STATUS,
    SUBSCRIBE,
    TIMEOUT,
    ConnectResult,
    HookRefused,
    HookUnavailable,
    parse_answer,
    parse_connect,
    parse_publish,
    parse_refresh,
    parse_rpc,
)
from hub.core.jsontext import dump_json, parse_json

__all__ = ["LOG_EVERY_S", "HookProxy"]

logger = logging.getLogger(__name__)

#: A failure is logged once per hook and cause in this long (the rest are counted).
LOG_EVERY_S = 5.0
#: Largest answer read from a backend.
MAX_ANSWER_BYTES = 1024 * 1024

_T = TypeVar("_T")


class HookProxy:
    """``call(hook, body, parse)``: POST ``body`` to the hook's URL and parse the answer."""

    def __init__(
        self,
        urls: Mapping[str, str],
        *,
        timeout_s: float,
        on_latency: Callable[[str, float], None] | None = None,
    ) -> None:
        unknown = set(urls) - set(HOOKS)
        if unknown:
            raise ValueError(f"unknown hooks {sorted(unknown)}")
        self.urls = dict(urls)
        self.timeout_s = timeout_s
        self.on_latency = on_latency
        #: Calls and failures per hook, since the worker started.
        self.calls: dict[str, int] = dict.fromkeys(HOOKS, 0)
        self.errors: dict[str, int] = dict.fromkeys(HOOKS, 0)
        self._session: aiohttp.ClientSession | None = None
        self._logged: dict[tuple[str, str], float] = {}

    def has(self, hook: str) -> bool:
        return hook in self.urls

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(keepalive_timeout=30.0, limit=256),
                headers={"Content-Type": "application/json", "User-Agent": "hub-hooks"},
                skip_auto_headers=("Accept-Encoding",),
            )
        return self._session

    async def call(
        self, hook: str, body: Mapping[str, object], parse: Callable[[object], _T]
    ) -> _T:
        """The parsed answer; raise HookRefused (the backend said no) or HookUnavailable."""
        self.calls[hook] += 1
        started = time.perf_counter()
        try:
            answer = await self._post(hook, body)
            return parse(answer)
        except HookRefused:
            raise
        except HookUnavailable as exc:
            self.errors[hook] += 1
            self._log(exc)
            raise
        finally:
            if self.on_latency is not None:
                self.on_latency(hook, time.perf_counter() - started)

    # One method per hook: each raises HookRefused or HookUnavailable.

    async def connect(self, body: Mapping[str, object]) -> ConnectResult:
        return await self.call(CONNECT, body, parse_connect)

    async def subscribe(self, body: Mapping[str, object]) -> None:
        await self.call(SUBSCRIBE, body, lambda answer: parse_answer(SUBSCRIBE, answer))

    async def publish(self, body: Mapping[str, object]) -> Envelope | None:
        return await self.call(PUBLISH, body, parse_publish)

    async def rpc(self, body: Mapping[str, object]) -> object:
        return await self.call(RPC, body, parse_rpc)

    async def refresh(self, body: Mapping[str, object]) -> float:
        return await self.call(REFRESH, body, parse_refresh)

    async def _post(self, hook: str, body: Mapping[str, object]) -> object:
        url = self.urls.get(hook)
        if url is None:
            raise HookUnavailable(hook, CONNECTION, "no URL is configured for it")
        try:
            async with self._client().post(url, data=dump_json(body)) as response:
                if response.status != 200:
                    raise HookUnavailable(hook, STATUS, f"the backend answered {response.status}")
                data = await response.content.read(MAX_ANSWER_BYTES + 1)
        except TimeoutError:
            raise HookUnavailable(
                hook, TIMEOUT, f"no answer within {self.timeout_s:g}s (--proxy-timeout-s)"
            ) from None
        except aiohttp.ClientError as exc:
            raise HookUnavailable(hook, CONNECTION, f"{type(exc).__name__}: {exc}") from None
        except OSError as exc:
            raise HookUnavailable(hook, CONNECTION, f"{type(exc).__name__}: {exc}") from None
        if len(data) > MAX_ANSWER_BYTES:
            raise HookUnavailable(hook, BAD_JSON, f"the answer is over {MAX_ANSWER_BYTES} bytes")
        try:
            return parse_json(data, exact=True)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HookUnavailable(hook, BAD_JSON, f"the answer is not JSON: {exc}") from None

    def _log(self, exc: HookUnavailable) -> None:
        key = (exc.hook, exc.cause)
        now = time.monotonic()
        last = self._logged.get(key)
        if last is None or now - last >= LOG_EVERY_S:
            self._logged[key] = now
            logger.warning("%s (logged once per %gs per cause)", exc, LOG_EVERY_S)

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            try:
                await asyncio.wait_for(session.close(), 1.0)
            except TimeoutError:
                pass
