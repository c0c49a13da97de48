"""Finding the Redis master through Redis Sentinel, and noticing when it changes.

Discovery follows the Sentinel client spec: ask each sentinel in turn ``SENTINEL
GET-MASTER-ADDR-BY-NAME <service>``, move the first that answers to the front of the list,
then connect to that address and check that ``ROLE`` says ``master`` (a sentinel that has not
yet seen a failover names the old master, now a replica). A switch is noticed three ways:
``+switch-master`` on a sentinel's pub/sub, a periodic recheck (that event can be missed: it
is pub/sub, and the watcher's sentinel may be the one that died), and the data connections
themselves (a lost connection, or a ``READONLY`` reply from a demoted master, makes them
reconnect, and every reconnect asks the sentinels again).

The sentinels are reached with redis-py (connections, AUTH, reply parsing: nothing on this
path is hot); the master's data connections stay on the lean RESP path (``resp.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Unpack
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel
import redis.sentinel
from redis.exceptions import RedisError

from hub.brokers.redis.client_options import AsyncOptions, SyncOptions, no_retry
from hub.brokers.resp import Endpoint

__all__ = [
    "SCHEME",
    "SentinelLocator",
    "SentinelTarget",
    "async_client",
    "is_sentinel_url",
    "sync_client",
]

logger = logging.getLogger(__name__)

SCHEME = "redis+sentinel"
#: How often the master's address is asked for again, in case ``+switch-master`` was missed.
RECHECK_S = 2.0
SENTINEL_TIMEOUT_S = 1.0


class NoMaster(ConnectionError):
    """No sentinel named a reachable master that says it is one."""


def is_sentinel_url(url: str) -> bool:
    return url.lower().startswith(SCHEME + "://")


@dataclass(frozen=True)
class SentinelTarget:
    """What a ``redis+sentinel://`` URL names: the sentinels, the service, and how to
    talk to the master (its credentials and database)."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    master: Endpoint
    sentinel_password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SentinelTarget:
        """``redis+sentinel://[user:pass@]host1:26379,host2:26380/mymaster[?db=0]``.

        The credentials are the master's; ``?sentinel_password=`` authenticates to the
        sentinels when they require it. Raises ValueError with what to fix.
        """
        parts = urlsplit(url)
        if parts.scheme.lower() != SCHEME:
            raise ValueError(f"not a {SCHEME}:// URL: {url!r}")
        userinfo, _, hosts = parts.netloc.rpartition("@")
        username, _, password = userinfo.partition(":") if userinfo else ("", "", "")
        sentinels = []
        for item in hosts.split(","):
            host, sep, port = item.strip().rpartition(":")
            if not sep:
                host, port = item.strip(), "26379"
            host = host.strip("[]")
            if not host or not port.isdigit():
                raise ValueError(f"bad sentinel address {item!r} in {url!r}: use host:port")
            sentinels.append((host, int(port)))
        service = parts.path.strip("/")
        if not service or "/" in service:
            raise ValueError(
                f"no master name in {url!r}: use {SCHEME}://host:26379,host:26380/mymaster"
            )
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"db", "sentinel_password"}
        if unknown:
            raise ValueError(
                f"unknown option(s) {sorted(unknown)} in {url!r}: use db, sentinel_password"
            )
        db = query.get("db", "0")
        if not db.isdigit():
            raise ValueError(f"db must be a number in {url!r}")
        master = Endpoint(
            host=None,
            username=unquote(username) or None,
            password=unquote(password) or None,
            db=int(db),
        )
        return cls(tuple(sentinels), unquote(service), master, query.get("sentinel_password"))

    def describe(self) -> str:
        hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels)
        return f"{SCHEME}://{hosts}/{self.service}"


class SentinelLocator:
    """The master's current endpoint, as the sentinels see it."""

    def __init__(self, target: SentinelTarget) -> None:
        self.target = target
        self.current: Endpoint | None = None
        #: (address, client) pairs; the first is asked first.
        self._sentinels = [
            (
                f"{host}:{port}",
                aioredis.Redis(
                    host=host,
                    port=port,
                    password=target.sentinel_password,
                    socket_timeout=SENTINEL_TIMEOUT_S,
                    socket_connect_timeout=SENTINEL_TIMEOUT_S,
                    retry=no_retry(),
                    decode_responses=True,
                ),
            )
            for host, port in target.sentinels
        ]

    async def ask(self) -> tuple[str, int]:
        """The master's address from the first sentinel that knows it."""
        errors = []
        for i, (where, sentinel) in enumerate(list(self._sentinels)):
            try:
                reply = await sentinel.execute_command(  # type: ignore[no-untyped-call]
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.target.service
                )
            except (RedisError, OSError) as exc:
                errors.append(f"sentinel {where}: {exc}")
                continue
            if reply:
                if i:  # the spec: the sentinel that answered goes first next time
                    self._sentinels.insert(0, self._sentinels.pop(i))
                return str(reply[0]), int(reply[1])
            errors.append(f"sentinel {where}: no master named {self.target.service!r}")
        raise NoMaster("; ".join(errors) or "no sentinel answered")

    async def locate(self) -> Endpoint:
        """Ask the sentinels, then check ``ROLE`` on the address they give."""
        host, port = await self.ask()
        endpoint = replace(self.target.master, host=host, port=port)
        master = aioredis.Redis(
            host=host,
            port=port,
            username=endpoint.username,
            password=endpoint.password,
            socket_timeout=SENTINEL_TIMEOUT_S,
            socket_connect_timeout=SENTINEL_TIMEOUT_S,
            retry=no_retry(),
            decode_responses=True,
        )
        try:
            role = await master.role()
        except (RedisError, OSError) as exc:
            raise NoMaster(
                f"the sentinels name {host}:{port}, which does not answer: {exc}"
            ) from None
        finally:
            await master.aclose()
        if not role or role[0] != "master":
            raise NoMaster(f"the sentinels name {host}:{port}, but it is a {role[0]} for now")
        if self.current is not None and (self.current.host, self.current.port) != (host, port):
            logger.warning(
                "redis master %r moved: %s:%s -> %s:%s",
                self.target.service,
                self.current.host,
                self.current.port,
                host,
                port,
            )
        self.current = endpoint
        return endpoint

    async def watch(self, on_switch: Callable[[], None]) -> None:
        """Call ``on_switch`` when the master is no longer the one the data connections use:
        on ``+switch-master`` for this service, or when a recheck names another address."""
        while True:
            pubsub = self._sentinels[0][1].pubsub()
            try:
                await pubsub.subscribe("+switch-master")
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=RECHECK_S
                    )
                    if message is not None:
                        fields = str(message["data"]).split()
                        if fields and fields[0] == self.target.service:
                            logger.info("sentinel: +switch-master %s", " ".join(fields))
                            on_switch()
                        continue
                    await self._recheck(on_switch)
            except (RedisError, OSError) as exc:
                logger.info("sentinel watch: %s; trying the next sentinel", exc)
                self._sentinels.append(self._sentinels.pop(0))
                with contextlib.suppress(RedisError, OSError):
                    await self._recheck(on_switch)
                await asyncio.sleep(SENTINEL_TIMEOUT_S)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _recheck(self, on_switch: Callable[[], None]) -> None:
        current = self.current
        if current is None:
            return
        try:
            host, port = await self.ask()
        except NoMaster:
            return
        if (host, port) != (current.host, current.port):
            on_switch()

    async def close(self) -> None:
        for _, sentinel in self._sentinels:
            with contextlib.suppress(RedisError, OSError):
                await sentinel.aclose()


def sync_client(url: str, **kwargs: Unpack[SyncOptions]) -> redis.Redis:
    """A redis-py client for ``url``; for a ``redis+sentinel://`` URL, one that finds the
    master through the sentinels (again after a failover)."""
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, **kwargs)
    sentinels, service, master = _sentinel_parts(url, kwargs)
    manager = redis.sentinel.Sentinel(**sentinels)  # type: ignore[no-untyped-call]
    return manager.master_for(service, **master)  # type: ignore[no-untyped-call,no-any-return]


def async_client(url: str, **kwargs: Unpack[AsyncOptions]) -> aioredis.Redis:
    """As :func:`sync_client`, for asyncio."""
    if not is_sentinel_url(url):
        return aioredis.Redis.from_url(url, **kwargs)
    sentinels, service, master = _sentinel_parts(url, kwargs)
    manager = aioredis.sentinel.Sentinel(**sentinels)  # type: ignore[no-untyped-call]
    return manager.master_for(service, **master)  # type: ignore[no-any-return]


def _sentinel_parts(
    url: str, kwargs: SyncOptions | AsyncOptions
) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """redis-py's Sentinel arguments, the service, and ``master_for``'s arguments (which
    redis-py takes as untyped ``**kwargs``)."""
    target = SentinelTarget.from_url(url)
    timeouts = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
    sentinels = {
        "sentinels": list(target.sentinels),
        "sentinel_kwargs": {"password": target.sentinel_password, **timeouts},
    }
    m = target.master
    master = {"username": m.username, "password": m.password, "db": m.db, **kwargs}
    return sentinels, target.service, master
