"""A JSON Web Key Set (--jwt-jwks-url): the keys by ``kid``, cached; fetched at start, and
again when a token names a kid it does not know, at most once per ``MIN_REFETCH_S``. A fetch
that fails keeps the keys already known, so a key server that is down for a while costs
only the tokens signed with a new key.

``hub.core.auth.Authenticator.with_key_set(keys.lookup, keys.refresh)`` verifies with it:
core never does the I/O.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import jwt

__all__ = ["MIN_REFETCH_S", "JwksKeys"]

logger = logging.getLogger(__name__)

#: The least time between two fetches of the key set.
MIN_REFETCH_S = 10.0
#: The JWT algorithm of each key type, when a key names no ``alg``.
_ALGORITHMS = {"RSA": "RS256", "EC": "ES256"}
_ALLOWED = frozenset(_ALGORITHMS.values())


def parse_key_set(doc: object) -> dict[str, tuple[object, str]]:
    """kid → (key, algorithm) of each usable key of a JWKS document (others are skipped)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError('a key set is {"keys": [...]}')
    keys: dict[str, tuple[object, str]] = {}
    for entry in doc["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        algorithm = entry.get("alg") or _ALGORITHMS.get(str(entry.get("kty")))
        if not isinstance(kid, str) or algorithm not in _ALLOWED:
            continue
        try:
            key = jwt.PyJWK(entry, algorithm).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            logger.warning("the key set's key %r is not usable: %s", kid[:40], exc)
            continue
        keys[kid] = (key, str(algorithm))
    return keys


class JwksKeys:
    """The key set at ``url``, for ``Authenticator.with_key_set``."""

    def __init__(self, url: str, *, timeout_s: float = 3.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.keys: dict[str, tuple[object, str]] = {}
        self.num_fetches = 0
        self.num_fetch_errors = 0
        self._fetched_at: float | None = None
        self._fetching: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def lookup(self, kid: str | None) -> tuple[object, str] | None:
        if kid is None:
            # A token without kid: the key set's only key, if it has one only.
            return next(iter(self.keys.values())) if len(self.keys) == 1 else None
        return self.keys.get(kid)

    async def start(self) -> None:
        await self.refresh(None)

    async def refresh(self, kid: str | None) -> None:
        """Fetch the set again unless it was fetched less than MIN_REFETCH_S ago; concurrent
        callers share one fetch."""
        if self._fetching is None:
            now = time.monotonic()
            if self._fetched_at is not None and now - self._fetched_at < MIN_REFETCH_S:
                return
            self._fetched_at = now
            self._fetching = asyncio.create_task(self._fetch())
            self._fetching.add_done_callback(self._fetched)
        await asyncio.shield(self._fetching)

    def _fetched(self, task: asyncio.Task[None]) -> None:
        self._fetching = None

    async def _fetch(self) -> None:
        self.num_fetches += 1
        try:
            if self._session is None:
                self._session = aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=self.timeout_s)
                )
            async with self._session.get(self.url) as response:
                if response.status != 200:
                    raise ValueError(f"it answered {response.status}")
                doc: Any = await response.json(content_type=None)
            keys = parse_key_set(doc)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            self.num_fetch_errors += 1
            logger.warning(
                "cannot fetch the key set %s (%s: %s); keeping the %d keys known",
                self.url,
                type(exc).__name__,
                exc,
                len(self.keys),
            )
            return
        if set(keys) != set(self.keys):
            logger.info("the key set %s now has the keys %s", self.url, sorted(keys))
        self.keys = keys

    async def close(self) -> None:
        if self._fetching is not None:
            self._fetching.cancel()
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
