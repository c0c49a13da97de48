"""The lab itself: hosts reach each other over the bridge, partitions go silent, heal, freeze."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.hosts import Lab, lab_or_skip

ECHO = (
    "import socket,sys\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind((sys.argv[1], 7000)); s.listen()\n"
    "while True:\n"
    "    c,_=s.accept(); c.sendall(c.recv(100)); c.close()\n"
)


def _echo(address: str, timeout: float = 2.0) -> bytes:
    with socket.create_connection((address, 7000), timeout=timeout) as conn:
        conn.sendall(b"ping")
        return conn.recv(100)


def _wait_echo(address: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            _echo(address)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _host_echo(lab: Lab, src: str, dst: str) -> bytes:
    return lab[src].thread(lambda: _echo(lab[dst].address)).result(10)


def test_hosts_reach_each_other_and_the_controller_and_nothing_routes_out(lab: Lab) -> None:
    a, b = lab.add_hosts("a", "b")
    a.popen([sys.executable, "-c", ECHO, a.address])
    _wait_echo(a.address)
    assert a.address.startswith("198.18.") and b.address.startswith("198.18.")
    assert _host_echo(lab, "b", "a") == b"ping"
    # No default route in a host: an address off the bridge is unreachable at once.
    route = b.run("ip", "route", "get", "1.1.1.1", check=False)
    assert route.returncode != 0 and "unreachable" in route.stderr


@pytest.mark.parametrize("direction", ["both", "out", "in"])
def test_a_partition_is_silent_in_either_direction_and_heals(lab: Lab, direction: str) -> None:
    a, b = lab.add_hosts("a", "b")
    a.popen([sys.executable, "-c", ECHO, a.address])
    _wait_echo(a.address)
    lab.partition(b, a, direction)  # type: ignore[arg-type]
    started = time.monotonic()
    with pytest.raises(TimeoutError):  # no RST, no ICMP: the SYN or its answer just vanishes
        lab["b"].thread(lambda: _echo(a.address, timeout=1.0)).result(10)
    assert time.monotonic() - started >= 0.9
    assert _echo(a.address) == b"ping"  # the controller is not cut off unless asked
    lab.heal()
    assert _host_echo(lab, "b", "a") == b"ping"


def test_isolate_cuts_a_host_off_from_the_controller_too(lab: Lab) -> None:
    (a,) = lab.add_hosts("a")
    a.popen([sys.executable, "-c", ECHO, a.address])
    _wait_echo(a.address)
    lab.isolate(a)
    with pytest.raises(TimeoutError):
        _echo(a.address, timeout=1.0)
    lab.heal(a)
    assert _echo(a.address) == b"ping"


def test_freeze_stops_every_process_on_a_host_and_thaw_resumes(lab: Lab) -> None:
    (a,) = lab.add_hosts("a")
    # A parent with a child: freeze reaches both through the namespace, not just the pid we hold.
    proc = a.popen(["bash", "-c", f"{sys.executable} -c '{ECHO}' {a.address} & wait"])
    _wait_echo(a.address)
    assert len(a.pids()) >= 2
    lab.freeze(a)
    with pytest.raises(TimeoutError):  # the kernel accepts, the frozen process never answers
        _echo(a.address, timeout=1.0)
    lab.thaw(a)
    assert _echo(a.address) == b"ping"
    lab.kill(a)
    assert proc.wait(10) == -9 and a.pids() == []


def test_close_removes_namespaces_bridge_and_processes_and_stale_labs_are_swept() -> None:
    lab = lab_or_skip()
    (a,) = lab.add_hosts("a")
    proc = a.popen(["sleep", "60"])
    names = (a.netns, lab.bridge)
    lab.close()
    assert proc.poll() is not None
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert names[0] not in listing and f" {names[1]}:" not in links
    # A lab whose test process died (its pid is gone) is removed by the next lab.
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"hublab-{dead.pid}-1-x"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    with lab_or_skip():
        pass
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert stale not in listing


def test_a_hub_on_one_host_fans_out_through_redis_on_another(lab: Lab, tmp_path: Path) -> None:
    import asyncio

    from support import HubProcess, RedisServer
    from websockets.asyncio.client import connect

    redis_host, hub_host, client_host = lab.add_hosts("redis", "hub1", "client1")
    redis = RedisServer(host=redis_host)
    redis.start()
    hub = HubProcess("--redis", redis.url, "--workers", "1", host=hub_host, log_dir=tmp_path)
    try:
        hub.wait_ready()

        async def roundtrip() -> str:
            async with connect(hub.url("lab")) as ws:
                await ws.send("hello from client1")
                return str(await asyncio.wait_for(ws.recv(), 5))

        assert (
            client_host.thread(lambda: asyncio.run(roundtrip())).result(15) == "hello from client1"
        )
        assert hub_host.address in hub.base_url
    finally:
        hub.stop()
        redis.close()
