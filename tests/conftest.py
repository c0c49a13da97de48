"""Shared fixtures: real redis-server and hub processes on free loopback ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from support import (
    ROOT,
    SCALE,
    HubProcess,
    RedisServer,
    async_wait_until,
    free_port,
    poll_until,
    redis_server_path,
    stop_process,
    t,
    wait_until,
)

__all__ = [
    "ROOT",
    "SCALE",
    "HubProcess",
    "RedisServer",
    "async_wait_until",
    "free_port",
    "poll_until",
    "redis_server_path",
    "stop_process",
    "t",
    "wait_until",
]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the tests that do not stop it."""
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may kill and restart."""
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def start_hub() -> Iterator[Callable[..., HubProcess]]:
    """Start ``hub serve`` processes; all are stopped at teardown."""
    hubs: list[HubProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, wait: bool = True) -> HubProcess:
        hub = HubProcess(*args, env=env)
        hubs.append(hub)
        return hub.wait_ready() if wait else hub

    yield start
    for hub in hubs:
        hub.stop()


@pytest.fixture
def hub_pair(
    redis_server: RedisServer, start_hub: Callable[..., HubProcess]
) -> tuple[HubProcess, HubProcess]:
    """Two single-worker hub instances sharing one redis-server, with a unique prefix."""
    prefix = f"t{free_port()}:"
    args = ("--redis", redis_server.url, "--workers", "1", "--channel-prefix", prefix)
    return start_hub(*args), start_hub(*args)
