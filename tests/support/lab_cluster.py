"""A Redis Cluster whose nodes each run on their own lab host (support.hosts).

It is support.cluster's RedisCluster, with the nodes started on hosts: node i listens on
its host's address, on port 7001 + i (distinct ports, so that the loopback version's
port-keyed bookkeeping holds as it is), and announces that address to the cluster
(``cluster-announce-ip``), so that ``CLUSTER SLOTS``, ``MOVED`` and the replicas' links name
an address that every other host can reach.
"""

from __future__ import annotations

import subprocess

from support.cluster import RedisCluster
from support.hosts import Host, Lab

BASE_PORT = 7001


class LabCluster(RedisCluster):
    """``masters`` masters with ``replicas`` replicas each, one node per new lab host
    (``redis1``, ``redis2`` …); the first ``masters`` hosts are the first masters."""

    def __init__(self, lab: Lab, masters: int = 3, replicas: int = 1) -> None:
        super().__init__(masters, replicas)
        total = masters * (1 + replicas)
        self.lab = lab
        self.hosts: dict[int, Host] = {
            BASE_PORT + i: lab.add_host(f"redis{i + 1}") for i in range(total)
        }

    def address(self, port: int) -> str:
        return self.hosts[port].address

    def host_of(self, port: int) -> Host:
        return self.hosts[port]

    def _new_port(self) -> int:
        return BASE_PORT + len(self.ports)

    def _start_node(self, port: int, argv: list[str]) -> subprocess.Popen[bytes]:
        address = self.address(port)
        argv = [*argv, "--bind", address, "--protected-mode", "no"]
        argv += ["--cluster-announce-ip", address]
        # Through the host, so that Lab.kill of the host waits for the node's end.
        return self.hosts[port].popen(argv, stdout=subprocess.DEVNULL)
