"""The compose topology, run for real without Docker.

redis-server (the compose `redis` command), one `hub serve` per compose hub service
(its environment, only host/port/Redis URL moved to loopback) and Debian's haproxy
with deploy/haproxy.cfg, or nginx with deploy/nginx.conf, in front. Clients that the
load balancer spreads over different hubs reach each other; when a hub is killed its
clients are cut off, reconnect through the load balancer and receive again.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import clean_env, free_port, http, t, wait_until
from support.counting import count
from support.deploy import (
    DEPLOY,
    Proc,
    env_dict,
    http_status,
    hub_services,
    lb_env,
    load_compose,
    processes,
    render_nginx,
    start_hubs,
    start_redis,
)
from support.sse import SseStream, open_sse
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

Hubs = dict[str, tuple[Proc, int]]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture
def stack(compose: dict[str, Any], tmp_path: Path) -> Iterator[tuple[list[Proc], Hubs]]:
    with processes() as procs:
        redis_port = start_redis(compose, tmp_path, procs)
        hubs = start_hubs(compose, redis_port, tmp_path, procs)
        yield procs, hubs


def test_haproxy_config_is_valid(compose: dict[str, Any]) -> None:
    hubs = {name: (None, 8765) for name in ("hub1", "hub2", "hub3")}
    env = clean_env(**lb_env(compose, "lb", hubs, free_port()))  # type: ignore[arg-type]
    result = subprocess.run(
        [HAPROXY, "-c", "-f", str(DEPLOY / "haproxy.cfg")],
        env=env,
        capture_output=True,
        text=True,
        timeout=t(30),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ALERT" not in result.stdout + result.stderr


def test_nginx_config_is_valid(compose: dict[str, Any], tmp_path: Path) -> None:
    hubs = {name: (None, free_port()) for name in ("hub1", "hub2", "hub3")}
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        render_nginx((DEPLOY / "nginx.conf").read_text(), compose, hubs, free_port(), tmp_path)  # type: ignore[arg-type]
    )
    result = subprocess.run(
        [NGINX, "-t", "-p", f"{tmp_path}/", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=t(30),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def start_haproxy(compose: dict[str, Any], hubs: Hubs, tmp: Path, procs: list[Proc]) -> int:
    port = free_port()
    env = clean_env(**lb_env(compose, "lb", hubs, port))
    proc = Proc("haproxy", [HAPROXY, "-f", str(DEPLOY / "haproxy.cfg"), "-db"], env, tmp / "lb.log")
    procs.append(proc)
    return port


def start_nginx(compose: dict[str, Any], hubs: Hubs, tmp: Path, procs: list[Proc]) -> int:
    port = free_port()
    prefix = tmp / "nginx"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(render_nginx((DEPLOY / "nginx.conf").read_text(), compose, hubs, port, prefix))
    argv = [NGINX, "-p", f"{prefix}/", "-c", str(conf), "-g", "daemon off;"]
    proc = Proc("nginx", argv, clean_env(), tmp / "lb.log")
    procs.append(proc)
    return port


async def open_client(lb_port: int, channel: str) -> ClientConnection:
    return await connect(f"ws://127.0.0.1:{lb_port}/{channel}", open_timeout=t(5))


async def recv_matching(ws: ClientConnection, prefix: str, within: float) -> str | None:
    """The next message starting with `prefix` (others are skipped), or None."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (remaining := deadline - loop.time()) > 0:
        try:
            msg = await asyncio.wait_for(ws.recv(), remaining)
        except TimeoutError:
            return None
        if isinstance(msg, str) and msg.startswith(prefix):
            return msg
    return None


_rounds = itertools.count()


async def assert_mesh(clients: list[ClientConnection]) -> None:
    """Every client's frames reach every client (sender included), then in order.

    A hub subscribes its channel in Redis a moment after the handshake, so each
    sender repeats a probe until all clients have seen one (bounded); then one
    sender's numbered burst must arrive complete and in order everywhere.
    """
    loop = asyncio.get_running_loop()
    rnd = next(_rounds)
    for i, sender in enumerate(clients):
        prefix = f"probe-{rnd}-{i}-"
        waiting = list(clients)
        deadline = loop.time() + t(15)
        for attempt in itertools.count():
            assert loop.time() < deadline, f"{len(waiting)} clients never got {prefix}*"
            await sender.send(f"{prefix}{attempt}")
            got = await asyncio.gather(*(recv_matching(ws, prefix, t(1)) for ws in waiting))
            waiting = [ws for ws, msg in zip(waiting, got, strict=True) if msg is None]
            if not waiting:
                break
    burst = [f"seq-{rnd}-{k}" for k in range(20)]
    for msg in burst:
        await clients[-1].send(msg)
    for ws in clients:
        received = []
        for _ in burst:
            msg = await recv_matching(ws, f"seq-{rnd}-", t(5))
            assert msg is not None, f"burst incomplete: {received}"
            received.append(msg)
        assert received == burst


async def run_failover(
    lb_port: int, hubs: Hubs, backend_of: Callable[[ClientConnection], str]
) -> None:
    channel = "deploy-test"
    clients = []
    try:
        for _ in range(4):
            clients.append(await open_client(lb_port, channel))
        placed = [backend_of(ws) for ws in clients]
        assert len(set(placed)) >= 2, f"the load balancer put every client on {placed}"
        await assert_mesh(clients)

        # A hub crashes: its clients are cut off, the others stay connected.
        victim = placed[0]
        hubs[victim][0].kill()
        cut = [ws for ws, b in zip(clients, placed, strict=True) if b == victim]
        kept = [ws for ws, b in zip(clients, placed, strict=True) if b != victim]
        for ws in cut:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(recv_matching(ws, "never-", t(30)), t(15))

        # They reconnect through the load balancer, to a surviving hub.
        again = []
        for _ in cut:
            ws = await open_client(lb_port, channel)
            again.append(ws)
            assert backend_of(ws) != victim
        clients = kept + again
        for ws in kept:
            assert ws.state.name == "OPEN"
        await assert_mesh(clients)
    finally:
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)


def wait_lb(lb: Proc, port: int) -> None:
    def up() -> bool:
        assert lb.alive(), f"{lb.name} exited:\n{lb.output()}"
        return http_status(port, "/readyz") == 200

    wait_until(up, 15, f"{lb.name} to proxy /readyz")


async def test_through_haproxy(
    compose: dict[str, Any], stack: tuple[list[Proc], Hubs], tmp_path: Path
) -> None:
    procs, hubs = stack
    port = start_haproxy(compose, hubs, tmp_path, procs)
    wait_lb(procs[-1], port)

    def backend_of(ws: ClientConnection) -> str:
        assert ws.response is not None
        name = ws.response.headers["X-Hub-Backend"]
        assert name in hubs, name
        return name

    await run_failover(port, hubs, backend_of)


async def test_through_nginx(
    compose: dict[str, Any], stack: tuple[list[Proc], Hubs], tmp_path: Path
) -> None:
    procs, hubs = stack
    port = start_nginx(compose, hubs, tmp_path, procs)
    wait_lb(procs[-1], port)
    by_addr = {f"127.0.0.1:{p}": name for name, (_, p) in hubs.items()}

    def backend_of(ws: ClientConnection) -> str:
        assert ws.response is not None
        # $upstream_addr lists every upstream tried ("a, b"); the last one answered.
        addr = ws.response.headers["X-Hub-Backend"].split(",")[-1].strip()
        assert addr in by_addr, addr
        return by_addr[addr]

    await run_failover(port, hubs, backend_of)


@pytest.mark.parametrize("balancer", ["haproxy", "nginx"])
async def test_sse_through_the_load_balancer(
    compose: dict[str, Any], tmp_path: Path, balancer: str
) -> None:
    """The balancer passes /sse/ and /api/publish/ to the hubs' API listeners, with no sticky
    sessions: a reader whose hub dies resumes through the load balancer on another, with
    its Last-Event-ID: 0 lost, 0 duplicated. Idle streams get keepalive comments, and the
    backends' own API endpoints are not exposed."""
    history = {"HUB_HISTORY_SIZE": "1000", "HUB_HISTORY_TTL_S": "600", "HUB_SSE_KEEPALIVE_S": "1"}
    key = env_dict(hub_services(compose)["hub1"].get("environment"))["HUB_API_KEY"]
    with processes() as procs:
        redis_port = start_redis(compose, tmp_path, procs)
        hubs = start_hubs(compose, redis_port, tmp_path, procs, extra_env=history)
        start = start_haproxy if balancer == "haproxy" else start_nginx
        port = start(compose, hubs, tmp_path, procs)
        wait_lb(procs[-1], port)
        by_api = {f"127.0.0.1:{proc.api_port}": name for name, (proc, _) in hubs.items()}

        def backend(stream: SseStream) -> str:
            # haproxy names the server; nginx gives every address it tried, the last answered.
            answered = stream.headers["x-hub-backend"].split(",")[-1].strip()
            return by_api.get(answered, answered)

        def publish(n: int, via: int = port) -> None:
            # Through the balancer, consecutive publishes may be served by different hubs,
            # whose pipelines reach Redis in either order (a 200 means the hub took it, not
            # that Redis has it yet): a sequence that must stay in order goes through one hub.
            status, answer = http(
                "POST",
                f"http://127.0.0.1:{via}/api/publish/sse.deploy",
                json.dumps({"n": n}).encode(),
                {"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
            )
            assert status == 200, answer

        status, _ = http("GET", f"http://127.0.0.1:{port}/api/channels")
        assert status == 404  # the WebSocket port answers: backends reach the API directly
        stream = await open_sse(port, "/sse/sse.deploy")
        assert stream.status == 200, stream.headers
        victim = backend(stream)
        assert victim in hubs, stream.headers
        first = await stream.next()
        assert first is not None and first.event == "subscribed"
        with pytest.raises(TimeoutError):
            await stream.next(timeout=2.5)
        assert "keepalive" in stream.comments  # through haproxy's 30 s idle timeouts
        events = []
        for n in range(10):
            publish(n)
            events += await stream.take(1)
        got = [e.json["data"]["n"] for e in events]
        hubs[victim][0].kill()
        assert await stream.next(timeout=10) is None  # cut off with its hub
        await stream.close()
        survivor = next(proc for name, (proc, _) in hubs.items() if name != victim)
        for n in range(10, 20):
            publish(n, via=survivor.api_port)

        async def reconnect() -> SseStream:
            # haproxy notices the dead hub within its check interval; until then a request
            # may still be sent there and fail (503), as EventSource would retry.
            while True:
                again = await open_sse(
                    port, "/sse/sse.deploy", {"Last-Event-ID": events[-1].id or ""}
                )
                if again.status == 200:
                    return again
                await asyncio.sleep(0.5)

        stream = await asyncio.wait_for(reconnect(), t(20))
        assert backend(stream) != victim
        first = await stream.next()
        assert first is not None and first.json["recovered"] is True, first
        publish(20)
        got += [e.json["data"]["n"] for e in await stream.take(11)]
        counts = count(got, range(21))
        assert counts.is_exact, (counts, got)
        await stream.close()
