"""What benchmarks/compare_load_tools.py measures of a load tool from outside it, the same way
for every tool: the CPU time and RSS of its whole process tree (psutil, and the rusage of
``wait4`` at its exit, which includes the children it reaped), and the sockets it holds, counted
on the server's side (``ss``: established TCP connections to the server's port).

A ``Watch`` samples every ``interval`` seconds in a thread, until the tool exits or its time is
up (then the tool's process group is killed). The baseline is the last sample before the server
saw the tool's first socket: the runtime's own start-up (Node.js loading Artillery, the Erlang VM,
Python's imports) is not charged to the sockets.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

import psutil


def established(port: int) -> int:
    """Established TCP connections whose local port is ``port`` (the server's side)."""
    out = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        check=True,
        timeout=10,
    ).stdout
    return out.count(b"\n")


@dataclass
class Sample:
    t: float  # seconds since the tool started
    cpu_s: float  # the tree's CPU time so far (exited processes keep their last figure)
    rss: int  # the tree's RSS now, bytes
    held: int  # the tool's sockets, seen by the server


@dataclass
class Watched:
    returncode: int | None  # None: killed at its time limit
    wall_s: float
    cpu_s: float
    samples: list[Sample] = field(default_factory=list)

    @property
    def peak_held(self) -> int:
        return max((s.held for s in self.samples), default=0)

    @property
    def peak_rss(self) -> int:
        return max((s.rss for s in self.samples), default=0)

    def baseline(self) -> Sample:
        """The last sample before the first socket (the first sample when there is none)."""
        before = Sample(0.0, 0.0, 0, 0)
        for s in self.samples:
            if s.held > 0:
                break
            before = s
        return before

    def first_at(self, held: int) -> Sample | None:
        return next((s for s in self.samples if s.held >= held), None)

    def cpu_at(self, t: float) -> float:
        """The tree's CPU time at ``t`` s, from the samples around it (the total after the end)."""
        earlier = [s for s in self.samples if s.t <= t]
        later = [s for s in self.samples if s.t > t]
        if not later:
            return self.cpu_s
        a = earlier[-1] if earlier else Sample(0.0, 0.0, 0, 0)
        b = later[0]
        return a.cpu_s + (b.cpu_s - a.cpu_s) * (t - a.t) / max(1e-9, b.t - a.t)


class Watch:
    """Start ``argv`` in its own process group and sample it until it exits."""

    def __init__(
        self,
        argv: list[str],
        port: int,
        *,
        others: int = 0,
        interval: float = 0.5,
        timeout_s: float = 300.0,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        log: str | None = None,
    ) -> None:
        self.port = port
        self.others = others  # sockets on the port that are not the tool's (a checker's)
        self.interval = interval
        self.timeout_s = timeout_s
        self.samples: list[Sample] = []
        self.cpu: dict[int, float] = {}
        out = open(log or os.devnull, "ab")
        self.start = time.monotonic()
        self.proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
        out.close()
        self.result: Watched | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def held(self) -> int:
        return self.samples[-1].held if self.samples else 0

    def _sample(self) -> None:
        rss = 0
        try:
            root = psutil.Process(self.proc.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for p in tree:
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    self.cpu[p.pid] = t.user + t.system
                    rss += p.memory_info().rss
            except psutil.Error:
                continue
        held = max(0, established(self.port) - self.others)
        self.samples.append(
            Sample(time.monotonic() - self.start, sum(self.cpu.values()), rss, held)
        )

    def _run(self) -> None:
        deadline = self.start + self.timeout_s
        status, usage = None, None
        while True:
            pid, st, ru = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                status, usage = st, ru
                break
            if time.monotonic() > deadline:
                os.killpg(self.proc.pid, signal.SIGKILL)
                _, _, usage = os.wait4(self.proc.pid, 0)
                break
            self._sample()
            time.sleep(self.interval)
        self.proc.returncode = None if status is None else os.waitstatus_to_exitcode(status)
        with_children = usage.ru_utime + usage.ru_stime
        self.result = Watched(
            returncode=self.proc.returncode,
            wall_s=time.monotonic() - self.start,
            cpu_s=max(with_children, sum(self.cpu.values())),
            samples=self.samples,
        )

    def wait(self) -> Watched:
        self.thread.join(self.timeout_s + 30)
        assert self.result is not None, "the watch thread did not finish"
        return self.result

    def wait_held(self, target: int, timeout_s: float) -> int:
        """Wait until the tool holds ``target`` sockets, or ``timeout_s``, or its exit."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.result is None and self.held() < target:
            time.sleep(0.1)
        return self.held()
