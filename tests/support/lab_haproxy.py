"""haproxy on a lab host, in front of hubs on other hosts, with the shipped deploy/haproxy.cfg.

The shipped file takes its addresses from the environment (``HUB_LB_BIND``, ``HUBn_ADDR``,
``HUBn_API_ADDR``), so rendering it for the lab is setting those to the hosts' addresses. A
second ``-f`` file adds only a ``global`` section with an admin stats socket (a path on the
shared file system, reachable from the test process whatever the namespace), from which
:meth:`LabHaproxy.servers` reads each server's status and session counts.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from support.waits import ROOT, wait_until

if TYPE_CHECKING:
    from support.hosts import Host
    from support.processes import HubProcess

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
CONFIG = ROOT / "deploy" / "haproxy.cfg"
PORT = 8765


@dataclass(frozen=True)
class ServerState:
    """One ``backend hubs`` server as haproxy's stats socket reports it."""

    name: str
    status: str  # UP, DOWN, "UP 1/2" (going down), "DOWN 1/2" (coming up), MAINT, …
    current: int  # sessions open now (scur)
    total: int  # sessions ever routed to it (stot)

    @property
    def routable(self) -> bool:
        """haproxy still sends new clients here (UP, or UP and failing checks)."""
        return self.status.startswith("UP") or self.status == "NOLB"


class LabHaproxy:
    """haproxy on ``host`` in front of ``hubs`` (hub1, hub2, hub3: three servers, as shipped)."""

    def __init__(self, host: Host, hubs: list[HubProcess], work: Path) -> None:
        assert len(hubs) == 3, "deploy/haproxy.cfg names three servers"
        self.host = host
        self.socket_path = work / "haproxy-admin.sock"
        extra = work / "haproxy-lab.cfg"
        extra.write_text(f"global\n    stats socket {self.socket_path} mode 600 level admin\n")
        env = {"HUB_LB_BIND": f"{host.address}:{PORT}", "PATH": "/usr/sbin:/usr/bin:/bin"}
        for i, hub in enumerate(hubs, 1):
            env[f"HUB{i}_ADDR"] = f"{hub.address}:{hub.port}"
            env[f"HUB{i}_API_ADDR"] = f"{hub.address}:{hub.api_port or hub.port + 1}"
        self.log_path = work / "haproxy.log"
        self._log = self.log_path.open("wb")
        self.proc = host.popen(
            [HAPROXY, "-db", "-f", str(CONFIG), "-f", str(extra)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._has_socket, 10, "haproxy's stats socket")

    @property
    def url(self) -> str:
        return f"ws://{self.host.address}:{PORT}/"

    def _has_socket(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"haproxy exited {self.proc.returncode}: {self.output()}")
        try:
            self.command("show info")
        except OSError:
            return False
        return True

    def command(self, line: str) -> str:
        """One command on the admin socket, and its answer."""
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(2)
            conn.connect(str(self.socket_path))
            conn.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers(self) -> dict[str, ServerState]:
        """Each server of ``backend hubs``: its status and sessions."""
        text = self.command("show stat").lstrip("# ")
        out = {}
        for row in csv.DictReader(io.StringIO(text)):
            if row["pxname"] == "hubs" and row["svname"] not in ("FRONTEND", "BACKEND"):
                out[row["svname"]] = ServerState(
                    row["svname"], row["status"], int(row["scur"] or 0), int(row["stot"] or 0)
                )
        return out

    def wait_status(self, server: str, up: bool, timeout: float = 20) -> None:
        want = "UP" if up else "DOWN"
        wait_until(lambda: self.servers()[server].status == want, timeout, f"{server} {want}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        with contextlib.suppress(ValueError):
            self._log.close()
