"""A real local Redis Sentinel deployment: a master, a replica and 3 sentinels on free loopback
ports, each a redis-server process stopped by its pid (import as ``support.sentinel``)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import redis

from support.processes import RedisServer
from support.waits import free_port, stop_process, t, wait_until

SERVICE = "mymaster"


def is_settled(sentinels: list[redis.Redis], replicas: list[RedisServer]) -> bool:
    """Every sentinel knows every replica and the other sentinels, and every replica is in
    sync with the master: a failover can happen now."""
    try:
        for s in sentinels:
            known = s.execute_command("SENTINEL", "REPLICAS", SERVICE)
            others = s.execute_command("SENTINEL", "SENTINELS", SERVICE)
            if len(known) < len(replicas) or len(others) < len(sentinels) - 1:
                return False
        return all(
            r.client().info("replication").get("master_link_status") == "up" for r in replicas
        )
    except (redis.RedisError, OSError):
        return False


class SentinelDeployment:
    """``master`` and ``replica`` are RedisServers; the sentinels fail over within seconds
    (down-after 1 s, failover-timeout 3 s)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hub-test-sentinel-"))
        self.master = RedisServer()
        self.master.start()
        self.replica = RedisServer("--replicaof", "127.0.0.1", str(self.master.port))
        self.replica.start()
        self.ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []
        for port in self.ports:
            conf = self.dir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 3000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            self.sentinels.append(
                subprocess.Popen(
                    ["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL
                )
            )
        wait_until(self.is_settled, 30, "the sentinels to see the replica and each other")

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def sentinel(self, i: int = 0) -> redis.Redis:
        return redis.Redis(port=self.ports[i], socket_timeout=2, decode_responses=True)

    def master_port(self) -> int:
        _host, port = self.sentinel().execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE
        )
        return int(port)

    def is_settled(self) -> bool:
        """Every sentinel knows the replica and the 2 other sentinels, and the replica is
        in sync: a failover can happen now."""
        return is_settled([self.sentinel(i) for i in range(3)], [self.replica])

    def server_on(self, port: int) -> RedisServer:
        return self.master if self.master.port == port else self.replica

    def failover(self) -> None:
        """``SENTINEL FAILOVER``: the graceful switch."""
        self.sentinel().execute_command("SENTINEL", "FAILOVER", SERVICE)

    def close(self) -> None:
        for proc in self.sentinels:
            stop_process(proc, t(5))  # type: ignore[arg-type]
        self.master.close()
        self.replica.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[SentinelDeployment]:
        deployment = cls()
        try:
            yield deployment
        finally:
            deployment.close()
