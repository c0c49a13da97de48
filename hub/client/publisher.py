"""Publishing from application code straight into Redis, with hub's envelope.

A backend (a Django view, a FastAPI handler, a Celery task) needs no WebSocket and no HTTP
API to reach hub's clients: it writes what a hub would write. On a history channel that is
the history script (``hub.brokers.scripts``), which gives the message its offset and keeps it
for recovery, exactly as a hub does; a plain PUBLISH would reach live clients but be missing
from every replay. Like Socket.IO's redis-emitter, but correct for history.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Final

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from hub.brokers.names import Names
from hub.brokers.redispy import async_client, names_for, sync_client
from hub.brokers.scripts import PUBLISH_SCRIPT, new_message_id, publish_args
from hub.core.channels import validate
from hub.core.config import Settings
from hub.core.envelope import BINARY, JSON, TEXT, encode_envelope
from hub.core.jsontext import dump_json
from hub.core.namespaces import ChannelOptions, ChannelRules
from hub.core.protocol import message_from_body

__all__ = ["Published", "Publisher"]

_UNSET: Final = object()
#: The publish script as text, as redis-py's eval takes it (it encodes it back to the same bytes).
_PUBLISH_SCRIPT_TEXT: Final = PUBLISH_SCRIPT.decode()
#: Pauses between the tries of one publish whose connection failed (the last one raises).
_RETRY_DELAYS_S: Final = (0.05, 0.2, 0.5)


@dataclass(frozen=True, slots=True)
class Published:
    """What a publish did: on a history channel its ``offset`` (0 when a retry found that
    an earlier try whose reply was lost had already published it); elsewhere ``receivers``,
    the number of hub processes subscribed to the channel in Redis."""

    channel: str
    offset: int | None = None
    receivers: int | None = None


def encode_payload(data: object, text: str | None, binary: bytes | None) -> tuple[bytes, int]:
    """(payload, kind) of exactly one of data=, text= or binary=; raise ValueError."""
    if [data is not _UNSET, text is not None, binary is not None].count(True) != 1:
        raise ValueError("publish exactly one of data=, text= or binary=")
    if data is not _UNSET:
        # Through the parser hub uses, so NaN and Infinity (not JSON) are refused here.
        try:
            return message_from_body(dump_json(data), JSON).payload, JSON
        except Exception as exc:
            raise ValueError(f"data must be a JSON value: {exc}") from None
    if text is not None:
        return text.encode("utf-8", "surrogatepass"), TEXT
    assert binary is not None
    return bytes(binary), BINARY


class Publisher:
    """Publishes into the Redis that the hubs share; sync (``publish``) and async
    (``apublish``) on the same object, each with its own connection pool.

    ``rules`` says which channels keep history (``Publisher.from_settings`` reads them from
    the hubs' own configuration: flags' defaults, HUB_* and the config file). A publish whose
    connection fails is tried again with the same message id, so on a history channel a
    resend that Redis already ran is recognised and not stored twice. (redis-py's own retries
    are off for that reason: they would resend without saying it is a resend.)
    """

    def __init__(
        self,
        redis_url: str,
        *,
        channel_prefix: str = "hub:",
        rules: ChannelRules | None = None,
        socket_timeout_s: float = 5.0,
    ) -> None:
        self.redis_url = redis_url
        self.channel_prefix = channel_prefix
        self.rules = rules or ChannelRules((), ChannelOptions())
        self._names: Names = names_for(redis_url, channel_prefix)
        self._timeout = socket_timeout_s
        self._sync: redis.Redis | redis.RedisCluster | None = None
        self._async: redis.asyncio.Redis | redis.asyncio.RedisCluster | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Publisher:
        """A publisher for the hubs that run with ``settings`` (their Redis, prefix and
        history channels)."""
        if not settings.redis_url:
            raise ValueError("the settings name no Redis (set HUB_REDIS_URL or --redis)")
        return cls(
            settings.redis_url,
            channel_prefix=settings.channel_prefix,
            rules=settings.channel_rules(),
        )

    @classmethod
    def from_env(cls, **overrides: Any) -> Publisher:
        """``from_settings(Settings.from_env(**overrides))``: HUB_REDIS_URL, HUB_CONFIG …"""
        return cls.from_settings(Settings.from_env(**overrides))

    # Sync

    def publish(
        self,
        channel: str,
        *,
        data: object = _UNSET,
        text: str | None = None,
        binary: bytes | None = None,
    ) -> Published:
        """Publish one of ``data`` (JSON), ``text`` or ``binary``; raise redis.RedisError
        when Redis stays unreachable, ValueError on a bad channel or payload."""
        payload, kind = encode_payload(data, text, binary)
        return self.publish_encoded(channel, payload, kind)

    def publish_encoded(self, channel: str, payload: bytes, kind: int) -> Published:
        """Publish a payload of a kind of ``hub.core.envelope`` (TEXT, BINARY, JSON)."""
        channel, envelope, options = self._prepare(channel, payload, kind)
        if self._sync is None:
            self._sync = sync_client(
                self.redis_url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                retry=Retry(NoBackoff(), 0),
            )
        client = self._sync
        if not options.has_history:
            key = self._key(channel)
            if self._names.sharded:
                return Published(channel, receivers=int(client.spublish(key, envelope)))
            return Published(channel, receivers=int(client.publish(key, envelope)))
        message_id = new_message_id()
        for attempt, delay in enumerate((*_RETRY_DELAYS_S, None)):
            numkeys, *args = self._script_args(channel, envelope, options, message_id, attempt > 0)
            try:
                offset = client.eval(_PUBLISH_SCRIPT_TEXT, int(numkeys), *args)
                return Published(channel, offset=int(offset))
            except (redis.ConnectionError, redis.TimeoutError):
                if delay is None:
                    raise
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Async

    async def apublish(
        self,
        channel: str,
        *,
        data: object = _UNSET,
        text: str | None = None,
        binary: bytes | None = None,
    ) -> Published:
        """``publish`` for asyncio code."""
        payload, kind = encode_payload(data, text, binary)
        return await self.apublish_encoded(channel, payload, kind)

    async def apublish_encoded(self, channel: str, payload: bytes, kind: int) -> Published:
        channel, envelope, options = self._prepare(channel, payload, kind)
        if self._async is None:
            self._async = async_client(
                self.redis_url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                retry=AsyncRetry(NoBackoff(), 0),
            )
        client = self._async
        if not options.has_history:
            key = self._key(channel)
            if self._names.sharded:
                receivers = await client.spublish(key, envelope)
            else:
                receivers = await client.publish(key, envelope)
            return Published(channel, receivers=int(receivers))
        message_id = new_message_id()
        for attempt, delay in enumerate((*_RETRY_DELAYS_S, None)):
            numkeys, *args = self._script_args(channel, envelope, options, message_id, attempt > 0)
            try:
                offset = await client.eval(_PUBLISH_SCRIPT_TEXT, int(numkeys), *args)
                return Published(channel, offset=int(offset))
            except (redis.ConnectionError, redis.TimeoutError):
                if delay is None:
                    raise
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()
            self._async = None

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # Shared

    def _key(self, channel: str) -> bytes:
        return self._names.pubsub(channel)

    def _prepare(
        self, channel: str, payload: bytes, kind: int
    ) -> tuple[str, bytes, ChannelOptions]:
        channel = validate(channel)
        return channel, encode_envelope(payload, kind), self.rules.options_for(channel)

    def _script_args(
        self,
        channel: str,
        envelope: bytes,
        options: ChannelOptions,
        message_id: bytes,
        is_resend: bool,
    ) -> tuple[bytes, ...]:
        return publish_args(
            self._names, channel, envelope, options, message_id=message_id, is_resend=is_resend
        )
