"""``hub bench agent`` processes for the agents' tests, on loopback or on a lab host, and one
controller run of ``hub bench`` against them, its JSON report read back."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from support.hosts import Host
from support.waits import ROOT, clean_env, stop_process, t, wait_until


class Agent:
    """One ``hub bench agent`` on a free port of ``address`` (on ``host`` when given); its
    stderr in ``log_path``."""

    def __init__(self, token: str, log_path: Path, host: Host | None = None) -> None:
        self.address = host.address if host else "127.0.0.1"
        argv = [sys.executable, "-m", "hub.bench", "agent", "--listen", f"{self.address}:0"]
        argv += ["--token", token]
        self.log_path = log_path
        self._log = log_path.open("wb")
        kwargs: dict[str, Any] = {
            "stdout": subprocess.PIPE,
            "stderr": self._log,
            "env": clean_env(),
            "cwd": ROOT,
        }
        self.proc = host.popen(argv, **kwargs) if host else subprocess.Popen(argv, **kwargs)
        self.name = f"{self.address}:{self._port()}"

    def _port(self) -> int:
        """The port from the agent's first line, ``... listening on HOST:PORT``."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], t(30))
        line = self.proc.stdout.readline().decode() if ready else ""
        if "listening on" not in line:
            raise RuntimeError(f"agent did not start: {line!r} {self.log()}")
        return int(line.rsplit(":", 1)[1])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def workers(self) -> list[int]:
        """The pids of its worker processes (its children but multiprocessing's tracker)."""
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        pids = []
        for child in children:
            try:
                if "resource_tracker" not in " ".join(child.cmdline()):
                    pids.append(child.pid)
            except psutil.Error:  # it exited meanwhile
                continue
        return pids

    def sockets(self) -> int:
        """The TCP connections its workers hold established (to the server under load). Read
        from each worker's own /proc/PID/net, so that it counts on a lab host too."""
        return sum(_established(pid) for pid in self.workers())

    def stop(self) -> None:
        stop_process(self.proc, t(10))
        self._log.close()


def run_bench(
    tmp_path: Path, *args: str, timeout: float = 120
) -> tuple[int, dict[str, Any] | None, str]:
    """``hub bench ARGS --json FILE``: its exit status, report (None: none written), stdout and
    stderr."""
    proc = start_bench(tmp_path, *args)
    out, err = proc.communicate(timeout=t(timeout))
    return proc.returncode, read_report(tmp_path), out.decode() + err.decode()


def start_bench(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    report = tmp_path / "report.json"
    report.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "hub.bench", *args, "--json", str(report), "-q"]
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(), cwd=ROOT
    )


def read_report(tmp_path: Path) -> dict[str, Any] | None:
    report = tmp_path / "report.json"
    return json.loads(report.read_text()) if report.exists() else None


def run_with_fault(
    tmp_path: Path,
    victim: Agent,
    fault: Callable[[], None],
    *args: str,
    sockets: int,
    after_s: float,
) -> tuple[int, dict[str, Any] | None, str, list[int]]:
    """``hub bench ARGS``, with ``fault`` done ``after_s`` after ``victim``'s workers hold
    their ``sockets``: the exit status, the report, the output, and the victim's worker pids."""
    bench = start_bench(tmp_path, *args)
    try:
        wait_until(lambda: victim.sockets() >= sockets, 60, f"agent {victim.name}'s sockets")
        workers = victim.workers()
        time.sleep(t(after_s))
        fault()
        out, err = bench.communicate(timeout=t(120))
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    return bench.returncode, read_report(tmp_path), out.decode() + err.decode(), workers


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _established(pid: int) -> int:
    """Established TCP sockets of process ``pid``, in its own network namespace."""
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        inodes = {link[8:-1] for link in links if link.startswith("socket:[")}
        rows = [
            line.split()
            for name in ("tcp", "tcp6")
            for line in Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        ]
    except OSError:  # it exited meanwhile
        return 0
    return sum(1 for row in rows if row[3] == "01" and row[9] in inodes)
