"""``hub check``'s visit to the broker: connect to the Redis that ``hub serve`` would use and
say what is there (version, role, the cluster's or the sentinels' topology), whether the
history script loads, and the round trip. A broker hub cannot use raises BrokerProblem."""

from __future__ import annotations

import time
from typing import Any, Final

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from hub.brokers.redis.sentinel import SentinelTarget, is_sentinel_url
from hub.brokers.redispy import sync_client
from hub.brokers.scripts import PUBLISH_SCRIPT, sha1
from hub.cli.embedded_redis import find_redis_server
from hub.cli.output import counted
from hub.core.config import Settings
from hub.core.errors import redact_url

__all__ = ["BrokerProblem", "probe_broker"]

#: Seconds to wait for a connect or an answer.
TIMEOUT_S: Final = 5.0
#: PINGs timed for the round trip (after the first, which also connects).
NUM_PINGS: Final = 5


class BrokerProblem(Exception):
    """The broker cannot be reached, or is not one hub can run on; the reason is the text."""


def probe_broker(settings: Settings) -> list[str]:
    """Lines that say what the broker of ``settings`` is; raise BrokerProblem."""
    url = settings.redis_url
    if url is None or url == "memory://":
        if settings.num_workers == 1 or url == "memory://":
            return ["broker: the memory broker, inside the process (nothing to connect to)"]
        path = find_redis_server()
        if path is None:
            raise BrokerProblem(
                f"{settings.num_workers} workers share an embedded redis-server, and "
                "redis-server is not installed: install it or pass --redis URL"
            )
        return [f"broker: an embedded redis-server that hub starts ({path})"]
    shown = redact_url(url)
    client = sync_client(
        url,
        socket_timeout=TIMEOUT_S,
        socket_connect_timeout=TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        lines = [f"broker: Redis at {shown}", *_describe(client, url)]
        sha = client.script_load(PUBLISH_SCRIPT.decode())
        if not isinstance(sha, str | bytes):  # a cluster may answer per node
            sha = next(iter(dict(sha).values()))
        sha = sha.decode() if isinstance(sha, bytes) else str(sha)
        if sha != sha1(PUBLISH_SCRIPT).decode():
            raise BrokerProblem(f"{shown}: SCRIPT LOAD gave {sha}, not the script's SHA1")
        lines.append(f"  history script: loads (SCRIPT LOAD, sha1 {sha[:12]}…)")
        lines.append(f"  round trip: {_round_trip_ms(client)}")
    except redis.RedisError as exc:
        raise BrokerProblem(f"cannot use Redis at {shown}: {_redacted(exc, url, shown)}") from None
    finally:
        client.close()
    return lines


def _describe(client: redis.Redis | RedisCluster, url: str) -> list[str]:
    if isinstance(client, RedisCluster):
        return _cluster(client)
    info: dict[str, Any] = client.info()
    mode, role = info.get("redis_mode", "standalone"), info.get("role", "?")
    role = "replica" if role == "slave" else role
    if mode == "cluster":
        raise BrokerProblem("this Redis runs in cluster mode: use a redis+cluster:// URL")
    lines = [
        f"  Redis {info.get('redis_version', '?')} ({mode}), role {role}, "
        f"{counted(int(info.get('connected_slaves', 0)), 'replica')}"
    ]
    if role != "master":
        raise BrokerProblem(
            f"Redis {info.get('redis_version', '?')} answers as a {role}, which cannot keep "
            "history or presence: point --redis at the master (or use redis+sentinel://)"
        )
    if is_sentinel_url(url):
        lines.append(_sentinels(SentinelTarget.from_url(url)))
    return lines


def _cluster(client: RedisCluster) -> list[str]:
    state = client.cluster_info()
    primaries = client.get_primaries()  # type: ignore[no-untyped-call]
    replicas = client.get_replicas()  # type: ignore[no-untyped-call]
    version = primaries[0].redis_connection.info("server").get("redis_version", "?")
    if state.get("cluster_state") != "ok":
        raise BrokerProblem(f"the cluster's state is {state.get('cluster_state')!r}, not 'ok'")
    return [
        f"  Redis {version} (cluster): state ok, {counted(len(primaries), 'master')}, "
        f"{counted(len(replicas), 'replica')}, "
        f"{state.get('cluster_slots_assigned', '?')} of 16384 slots assigned"
    ]


def _sentinels(target: SentinelTarget) -> str:
    """What the sentinels say of the master, and how many answered."""
    answers: list[dict[str, Any]] = []
    for host, port in target.sentinels:
        sentinel = redis.Redis(
            host=host,
            port=port,
            password=target.sentinel_password,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
            decode_responses=True,
        )
        try:
            answer = sentinel.sentinel_master(target.service)
            if isinstance(answer, dict):
                answers.append(answer)
        except redis.RedisError:
            pass
        finally:
            sentinel.close()
    if not answers:
        raise BrokerProblem(f"no sentinel of {target.describe()} answers for {target.service!r}")
    master = answers[0]
    return (
        f"  sentinel: {target.service!r} at {master.get('ip')}:{master.get('port')}, "
        f"{counted(int(master.get('num-slaves', 0)), 'replica')}, quorum "
        f"{master.get('quorum', '?')}; {len(answers)} of "
        f"{counted(len(target.sentinels), 'sentinel')} answered"
    )


def _round_trip_ms(client: redis.Redis | RedisCluster) -> str:
    client.ping()  # connected first
    times = []
    for _ in range(NUM_PINGS):
        start = time.perf_counter()
        client.ping()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return f"{times[0]:.2f} ms (best of {NUM_PINGS} PINGs; median {times[NUM_PINGS // 2]:.2f} ms)"


def _redacted(exc: BaseException, url: str, shown: str) -> str:
    return str(exc).replace(url, shown) or type(exc).__name__
