"""Redis Sentinel on lab hosts (support.hosts): a primary, its replicas and 3 sentinels, each
on a host of its own, all running the shipped configuration (deploy/sentinel/). The loopback
version is support.sentinel, whose settled check this shares."""

from __future__ import annotations

import shlex
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

import redis

from support.hosts import Lab
from support.processes import RedisServer
from support.sentinel import SERVICE, is_settled
from support.waits import ROOT, wait_until

__all__ = ["SHIPPED", "LabSentinel", "shipped_redis_args"]

SHIPPED = ROOT / "deploy" / "sentinel"
SENTINEL_PORT = 26379


def shipped_redis_args() -> list[str]:
    """deploy/sentinel/redis.conf as redis-server arguments (``--name value``)."""
    args: list[str] = []
    for line in (SHIPPED / "redis.conf").read_text().splitlines():
        words = shlex.split(line, comments=True)
        if words:
            args += [f"--{words[0]}", *words[1:]]
    return args


class LabSentinel:
    """``primary`` and ``replicas`` (RedisServers) and the sentinels, on the hosts named
    ``redis1``…, ``sentinel1``… of ``lab``; the lab stops them all at close."""

    def __init__(self, lab: Lab, replicas: int = 2) -> None:
        self.lab = lab
        self.dir = Path(tempfile.mkdtemp(prefix="hub-lab-sentinel-"))
        self._logs: list[BinaryIO] = []
        hosts = lab.add_hosts(*(f"redis{i + 1}" for i in range(replicas + 1)))
        self.primary = RedisServer(*shipped_redis_args(), host=hosts[0])
        self.primary.start()
        self.replicas = []
        for host in hosts[1:]:
            replica = RedisServer(
                *shipped_redis_args(), "--replicaof", self.primary.address, "6379", host=host
            )
            replica.start()
            self.replicas.append(replica)
        self.sentinel_hosts = lab.add_hosts("sentinel1", "sentinel2", "sentinel3")
        shipped = (SHIPPED / "sentinel.conf").read_text()
        for host in self.sentinel_hosts:
            conf = self.dir / f"{host.name}.conf"
            text = shipped.replace(" redis-primary ", f" {self.primary.address} ")
            conf.write_text(f"{text}\nbind {host.address}\ndir {self.dir}\n")
            log = (self.dir / f"{host.name}.log").open("wb")
            self._logs.append(log)
            host.popen(["redis-server", str(conf), "--sentinel"], stdout=log)
        wait_until(self.is_settled, 30, "the sentinels to see the replicas and each other")

    @property
    def servers(self) -> list[RedisServer]:
        return [self.primary, *self.replicas]

    @property
    def url(self) -> str:
        hosts = ",".join(f"{h.address}:{SENTINEL_PORT}" for h in self.sentinel_hosts)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def sentinel(self, i: int = 0) -> redis.Redis:
        address = self.sentinel_hosts[i].address
        return redis.Redis(address, SENTINEL_PORT, socket_timeout=1, decode_responses=True)

    def master_address(self) -> str | None:
        """The primary's address as the sentinels that answer name it (None: none does)."""
        for i in range(len(self.sentinel_hosts)):
            try:
                reply = self.sentinel(i).execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE
                )
                return str(reply[0])
            except (redis.RedisError, OSError):
                continue
        return None

    def is_settled(self) -> bool:
        return is_settled([self.sentinel(i) for i in range(3)], self.replicas)

    def server_at(self, address: str) -> RedisServer:
        return next(server for server in self.servers if server.address == address)

    def close(self) -> None:
        for server in self.servers:
            server.close()
        for log in self._logs:
            log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
