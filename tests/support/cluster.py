"""A real local Redis Cluster: N masters (plus replicas) on free loopback ports, each in a
temp dir, created with ``redis-cli --cluster create`` and stopped by pid; and the counted
stream that the Cluster fault tests run through two hubs (:func:`stream_through`).

The cluster bus listens on port + 10000, so ports are drawn below 55536 with the bus port
free too. A short ``cluster-node-timeout`` keeps failover tests to seconds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from websockets.asyncio.client import connect

from hub.brokers.cluster import PartitionMap
from hub.cli.embedded_redis import redis_server_argv
from support.counting import Counts, count, publish_round_robin
from support.processes import HubProcess
from support.waits import free_port, t, wait_until

NODE_TIMEOUT_MS = 1000


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port(taken: set[int]) -> int:
    """A free port below 55536 whose cluster-bus port (port + 10000) is free as well."""
    for _ in range(1000):
        port = free_port() % 40000 + 10000
        if port not in taken and _port_is_free(port) and _port_is_free(port + 10000):
            return port
    raise AssertionError("no free port pair for a cluster node")


class RedisCluster:
    """``masters`` masters with ``replicas`` replicas each; ``with RedisCluster(3) as c: ...``."""

    def __init__(self, masters: int = 3, replicas: int = 0) -> None:
        self.num_masters = masters
        self.num_replicas = replicas
        self.ports: list[int] = []
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.dirs: list[str] = []

    def address(self, port: int) -> str:
        """The address of the node on ``port`` (every node is on loopback here)."""
        return "127.0.0.1"

    def node(self, port: int) -> str:
        return f"{self.address(port)}:{port}"

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(self.node(p) for p in self.ports)

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(host=self.address(port), port=port, socket_timeout=5)

    def _new_port(self) -> int:
        return cluster_port(set(self.ports))

    def _start_node(self, port: int, argv: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        total = self.num_masters * (1 + self.num_replicas)
        for _ in range(total):
            port = self._new_port()
            self.ports.append(port)
            work = tempfile.mkdtemp(prefix="hub-test-cluster-")
            self.dirs.append(work)
            extra = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            extra += ["--cluster-node-timeout", str(NODE_TIMEOUT_MS)]
            argv = redis_server_argv(dir=work, port=port, extra=extra)
            self.procs[port] = self._start_node(port, argv)
        for port in self.ports:
            wait_until(lambda p=port: self._pings(p), 10, f"cluster node on port {port}")
        subprocess.run(
            ["redis-cli", "--cluster", "create"]
            + [self.node(p) for p in self.ports]
            + ["--cluster-replicas", str(self.num_replicas), "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=60,
        )
        wait_until(self.is_ok, 30, "cluster_state:ok on every node")
        # A replica that never synced refuses to take over (its data age is unknown).
        wait_until(self.replicas_synced, 30, "every replica's link to its master")

    def replicas_synced(self) -> bool:
        for port in self.ports:
            info = self.client(port).info("replication")
            if info.get("role") == "slave" and info.get("master_link_status") != "up":
                return False
        return True

    def _pings(self, port: int) -> bool:
        try:
            return bool(self.client(port).ping())
        except redis.RedisError:
            return False

    def is_ok(self) -> bool:
        """Every running node says cluster_state:ok."""
        for port, proc in self.procs.items():
            if proc.poll() is not None:
                continue
            try:
                if self.client(port).cluster("info").get("cluster_state") != "ok":
                    return False
            except redis.RedisError:
                return False
        return True

    def masters(self) -> dict[int, list[tuple[int, int]]]:
        """Each master's port → its slot ranges, as a live node sees them."""
        live = next(p for p, proc in self.procs.items() if proc.poll() is None)
        out: dict[int, list[tuple[int, int]]] = {}
        for low, high, master, *_ in self.client(live).execute_command("CLUSTER", "SLOTS"):
            out.setdefault(int(master[1]), []).append((int(low), int(high)))
        return out

    def owner(self, slot: int) -> int:
        """The port of the master that owns the slot."""
        for port, ranges in self.masters().items():
            if any(low <= slot <= high for low, high in ranges):
                return port
        raise AssertionError(f"slot {slot} is not served")

    def node_id(self, port: int) -> str:
        return str(self.client(port).execute_command("CLUSTER", "MYID").decode())

    def reshard(self, source: int, target: int, num_slots: int) -> None:
        """Move ``num_slots`` slots (the source's lowest) with ``redis-cli --cluster reshard``."""
        argv = ["redis-cli", "--cluster", "reshard", self.node(source)]
        argv += ["--cluster-from", self.node_id(source), "--cluster-to", self.node_id(target)]
        argv += ["--cluster-slots", str(num_slots), "--cluster-yes"]
        subprocess.run(
            argv,
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=120,
        )
        wait_until(self.is_ok, 30, "cluster_state:ok after the reshard")

    def replica_of(self, master: int) -> int:
        """The port of a replica of the master."""
        for port in self.ports:
            if port == master or self.procs[port].poll() is not None:
                continue
            info = self.client(port).info("replication")
            if info.get("role") == "slave" and int(info["master_port"]) == master:
                return port
        raise AssertionError(f"no replica of the master on port {master}")

    def failover(self, replica: int) -> None:
        """A graceful failover: ``CLUSTER FAILOVER`` on the replica; wait for it to lead."""
        self.client(replica).execute_command("CLUSTER", "FAILOVER")
        # Every live node, not just one: a client may read the slot map from any of them, and
        # the news spreads by gossip.
        wait_until(lambda: self.everyone_sees_master(replica), 30, f"{replica} promoted")
        wait_until(self.is_ok, 30, "cluster_state:ok after the failover")

    def everyone_sees_master(self, port: int) -> bool:
        """Every live node's CLUSTER SLOTS names ``port`` as a master."""
        for node, proc in self.procs.items():
            if proc.poll() is not None:
                continue
            slots = self.client(node).execute_command("CLUSTER", "SLOTS")
            if not any(int(master[1]) == port for _, _, master, *_ in slots):
                return False
        return True

    def kill(self, port: int) -> None:
        """SIGKILL one node (a crashed master): its replica takes over after the node timeout."""
        proc = self.procs[port]
        proc.kill()
        proc.wait(10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        for work in self.dirs:
            shutil.rmtree(work, ignore_errors=True)

    def __enter__(self) -> RedisCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def in_partitions(pm: PartitionMap, partitions: set[int], n: int, stem: str) -> list[str]:
    """``n`` channel names whose partitions are among ``partitions``."""
    names = (f"{stem}{i}" for i in range(100_000))
    return [c for c in names if pm.partition(c) in partitions][:n]


@dataclass
class MultiReader:
    """One hub.v1 socket subscribed to many channels: the numbers each got, and gaps."""

    channels: Sequence[str]
    numbers: dict[str, list[int]] = field(default_factory=lambda: collections.defaultdict(list))
    gaps: list[dict[str, Any]] = field(default_factory=list)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, url: str, until: Callable[[MultiReader], bool]) -> None:
        async with connect(url, subprotocols=["hub.v1"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"op": "subscribe", "channels": list(self.channels)}))
            async for frame in ws:
                message = json.loads(frame)
                kind = message.get("type")
                if kind == "ack":
                    self.subscribed.set()
                elif kind == "message":
                    self.numbers[message["channel"]].append(message["data"]["n"])
                elif kind == "gap":
                    self.gaps.append(message)
                elif kind == "error":
                    raise AssertionError(f"error frame: {message}")
                if until(self):
                    return

    def counts(self, per_channel: int) -> dict[str, Counts]:
        return {c: count(self.numbers[c], range(per_channel)) for c in self.channels}

    def total(self) -> int:
        """Distinct messages so far (a duplicate must not end the reading early)."""
        return sum(len(set(v)) for v in self.numbers.values())


async def stream_through(
    a: HubProcess,
    b: HubProcess,
    channels: Sequence[str],
    per_channel: int,
    rate: float,
    fault: Callable[[], None],
    fault_after_s: float = 1.0,
) -> MultiReader:
    """Publish through hub A, read through hub B, and run ``fault`` (in a thread) mid-stream."""
    reader = MultiReader(channels)
    total = len(channels) * per_channel
    reading = asyncio.create_task(reader.run(b.url(), lambda r: r.total() >= total))
    await asyncio.wait_for(reader.subscribed.wait(), t(10))
    publishing = asyncio.create_task(
        publish_round_robin(a.url(), channels, range(per_channel), rate=rate)
    )
    await asyncio.sleep(fault_after_s)
    await asyncio.to_thread(fault)
    await publishing
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reading, t(20))
    reading.cancel()
    return reader


def exact(counts: dict[str, Counts]) -> dict[str, str]:
    """The channels whose counts are not exact, with their counts (empty: all exact)."""
    return {c: str(k) for c, k in counts.items() if not k.is_exact}
