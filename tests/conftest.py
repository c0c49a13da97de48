"""Shared fixtures: real redis-server and hub processes on free loopback ports.

The plumbing behind them (scaled waits, free ports, the process classes) is in support.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import HubProcess, RedisServer, free_port


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the tests that do not stop it."""
    with RedisServer.running() as server:
        yield server


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may kill and restart."""
    with RedisServer.running() as server:
        yield server


@pytest.fixture
def start_hub(tmp_path: Path) -> Iterator[Callable[..., HubProcess]]:
    """Start ``hub serve`` processes (logs under ``tmp_path``); all are stopped at teardown."""
    hubs: list[HubProcess] = []

    def start(
        *args: str, env: dict[str, str] | None = None, wait: bool = True, api: bool = False
    ) -> HubProcess:
        hub = HubProcess(*args, env=env, api=api, log_dir=tmp_path / "logs")
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
