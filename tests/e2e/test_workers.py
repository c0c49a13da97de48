"""Several workers on one port, the supervisor, the embedded redis-server, and shutdown."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from support import ROOT, HubProcess, recv_n, t, wait_until
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


def _workers(hub: HubProcess) -> list[psutil.Process]:
    """The supervisor's live worker processes (not redis-server, not zombies)."""
    workers = []
    for p in psutil.Process(hub.proc.pid).children():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(p.cmdline()):
                workers.append(p)
        except psutil.Error:
            pass
    return workers


async def test_clients_on_different_workers_reach_each_other(
    start_hub: Callable[..., HubProcess],
) -> None:
    """With --workers 3 and the embedded redis-server, every client hears every other one."""
    hub = start_hub("--workers", "3")
    assert "embedded redis-server" in hub.output()
    wait_until(lambda: hub.output().count("redis subscriber connected") == 3, 10, "3 workers")
    clients = await asyncio.gather(*(connect(hub.url("shared")) for _ in range(30)))
    try:
        # 30 connections spread by SO_REUSEPORT over 3 workers: all on one has odds 3^-29.
        await clients[0].send("across workers")
        got = await asyncio.gather(*(recv_n(ws, 1) for ws in clients))
        assert got == [["across workers"]] * 30
        await clients[29].send("back")
        assert await recv_n(clients[0], 1) == ["back"]
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))


async def test_supervisor_restarts_a_dead_worker(start_hub: Callable[..., HubProcess]) -> None:
    """A worker killed with SIGKILL is replaced, and the hub keeps serving."""
    hub = start_hub("--workers", "2")
    wait_until(lambda: len(_workers(hub)) == 2, 10, "two workers")
    victim = _workers(hub)[0]
    victim.kill()
    wait_until(
        lambda: len(_workers(hub)) == 2 and victim.pid not in [p.pid for p in _workers(hub)],
        15,
        "the worker to be restarted",
    )
    assert re.search(r"worker \d \(pid \d+\) exited", hub.output())
    wait_until(lambda: hub.output().count("redis subscriber connected") >= 3, 10, "new worker")
    async with connect(hub.url("alive")) as ws:
        await ws.send("still serving")
        assert await recv_n(ws, 1) == ["still serving"]


@pytest.mark.parametrize("workers", ["1", "3"])
async def test_sigterm_closes_clients_with_1001_and_exits_0(
    start_hub: Callable[..., HubProcess], workers: str
) -> None:
    """On SIGTERM every client sees 1001 and the command exits 0 within a few seconds."""
    hub = start_hub("--workers", workers)
    if workers == "3":
        wait_until(lambda: hub.output().count("redis subscriber connected") == 3, 10, "workers")
    sock_dirs = re.findall(r"embedded redis-server \d+ on (\S+)/redis.sock", hub.output())
    clients = await asyncio.gather(*(connect(hub.url("bye")) for _ in range(10)))
    hub.signal(signal.SIGTERM)
    for ws in clients:
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), t(10))
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    assert hub.proc.wait(t(10)) == 0
    for d in sock_dirs:
        assert not Path(d).exists(), "the embedded redis-server's directory was not removed"


def test_several_workers_without_redis_server_exit_with_advice(tmp_path: Path) -> None:
    """With no --redis and no redis-server installed, several workers exit at once with advice."""
    bin_dir = tmp_path / "bin"  # a PATH without redis-server
    bin_dir.mkdir()
    out = subprocess.run(
        [sys.executable, "-m", "hub", "serve", "--workers", "2", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=t(20),
        env={"PATH": str(bin_dir)},
        cwd=ROOT,
    )
    assert out.returncode == 2
    assert "--redis URL" in out.stderr and "install redis-server" in out.stderr
