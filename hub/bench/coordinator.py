"""The coordinator: it starts the worker processes, paces the phases and gathers the results.

Phases: every worker reports ``ready``; ``connect`` opens the sockets; every worker reports
``connected``; then the scenario runs (``start`` ... ``drain`` / ``round`` / ``finish``); every
worker sends its ``result``; ``stop`` ends them. Workers send ``progress`` every interval.
"""

from __future__ import annotations

import multiprocessing
import queue
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from hub.bench.config import RunConfig
from hub.bench.scenarios import scenario_for
from hub.bench.scenarios.base import REPLY_GRACE_S
from hub.bench.server_memory import server_rss
from hub.bench.stats import merge_encoded
from hub.bench.worker import run_worker

__all__ = ["BenchError", "Coordinator", "ServerMemoryOptions"]

# How long a worker may take to start (spawn and imports) and to answer after its work is done.
STARTUP_TIMEOUT_S = 60.0


class BenchError(RuntimeError):
    """The run could not go on: a worker failed or stopped answering."""


@dataclass(frozen=True)
class ServerMemoryOptions:
    pids: list[int] = field(default_factory=list)
    include_children: bool = False
    metrics_url: str | None = None
    hold_s: float = 5.0
    settle_s: float = 1.0


@dataclass
class LiveState:
    """What the live display shows; updated from ``progress`` events."""

    phase: str = "starting"
    target: int = 0
    connected: dict[int, int] = field(default_factory=dict)
    failed: dict[int, int] = field(default_factory=dict)
    frames: dict[int, int] = field(default_factory=dict)
    sent: dict[int, int] = field(default_factory=dict)
    cpu: dict[int, float] = field(default_factory=dict)
    loop_lag_ms: dict[int, float] = field(default_factory=dict)  # the interval's highest
    recv_rate: float = 0.0
    p99_us: int | None = None
    last_frames: int = 0
    last_t: float = field(default_factory=time.monotonic)


class Coordinator:
    def __init__(
        self,
        config: RunConfig,
        *,
        memory: ServerMemoryOptions | None = None,
        on_update: Callable[[LiveState], None] | None = None,
    ) -> None:
        self.config = config
        self.memory = memory or ServerMemoryOptions()
        self.on_update = on_update
        self.live = LiveState(target=config.num_sockets + config.num_publishers)
        ctx = multiprocessing.get_context("spawn")
        self.events: multiprocessing.Queue[tuple[str, int, dict[str, Any]]] = ctx.Queue()
        self.pipes: list[Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self.ctx = ctx
        self.t0 = time.monotonic()
        # Timeline: (seconds since start of the measured phase, frames, interval histogram)
        self.timeline: list[dict[str, Any]] = []
        # Sockets connected over all workers, once per interval, from the start of the run.
        self.connections_timeline: list[dict[str, float]] = []
        self.phase_start: float | None = None
        # The workers' run histograms (encoded), for the plot.
        self.histograms: list[bytes] = []
        self.scenario = scenario_for(config)
        #: The server's memory before the sockets connected, and where it was read.
        self.server_rss_before: tuple[int | None, str] = (None, "none")
        self.num_connected = 0

    # Plumbing

    def send_all(self, kind: str, **data: Any) -> None:
        for pipe in self.pipes:
            try:
                pipe.send((kind, data))
            except (BrokenPipeError, OSError):
                pass

    def gather(self, kind: str, timeout_s: float) -> dict[int, dict[str, Any]]:
        """Wait for one ``kind`` event from every worker, handling progress meanwhile."""
        got: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout_s
        while len(got) < len(self.processes):
            data = self.next_event(kind, deadline)
            if data is None:
                missing = sorted(set(range(len(self.processes))) - set(got))
                raise BenchError(f"workers {missing} sent no {kind!r} within {timeout_s:.0f}s")
            worker, payload = data
            got[worker] = payload
        return got

    def next_event(self, kind: str, deadline: float) -> tuple[int, dict[str, Any]] | None:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                event_kind, worker, data = self.events.get(timeout=min(remaining, 0.25))
            except queue.Empty:
                self.check_alive()
                continue
            if event_kind == "progress":
                self.on_progress(worker, data)
            elif event_kind == "error":
                raise BenchError(f"worker {worker} failed: {data.get('message')}")
            elif event_kind == kind:
                return worker, data

    def check_alive(self) -> None:
        for number, process in enumerate(self.processes):
            if process.exitcode not in (None, 0):
                raise BenchError(f"worker {number} exited with code {process.exitcode}")

    def on_progress(self, worker: int, data: dict[str, Any]) -> None:
        live = self.live
        live.connected[worker] = data["connected"]
        live.failed[worker] = data["failed"]
        live.frames[worker] = data["frames"]
        live.sent[worker] = data["sent"]
        live.cpu[worker] = data["cpu_percent"]
        live.loop_lag_ms[worker] = data.get("loop_lag_ms", 0.0)
        now = time.monotonic()
        conn_rows = self.connections_timeline
        if not conn_rows or now - self.t0 - conn_rows[-1]["t_s"] >= self.config.interval_s:
            conn_rows.append(
                {"t_s": round(now - self.t0, 3), "connected": sum(live.connected.values())}
            )
        frames = sum(live.frames.values())
        if now - live.last_t >= 0.5 * self.config.interval_s:
            live.recv_rate = (frames - live.last_frames) / (now - live.last_t)
            live.last_frames, live.last_t = frames, now
        if data["interval_hist"]:
            hist = merge_encoded([data["interval_hist"]])
            live.p99_us = hist.get_value_at_percentile(99.0)
            if self.phase_start is not None:
                self.timeline.append(
                    {"t_s": now - self.phase_start, "worker": worker, "hist": data["interval_hist"]}
                )
        if self.on_update is not None:
            self.on_update(live)

    def set_phase(self, phase: str) -> None:
        self.live.phase = phase
        if self.on_update is not None:
            self.on_update(self.live)

    # Run

    def run(self) -> dict[str, Any]:
        try:
            return self._run()
        finally:
            self.shutdown()

    def _run(self) -> dict[str, Any]:
        config = self.config
        started_wall = time.time()
        for number in range(config.procs):
            parent, child = self.ctx.Pipe()
            process = self.ctx.Process(
                target=run_worker,
                args=(config, number, child, self.events),
                name=f"hub-bench-{number}",
                daemon=True,
            )
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)
        ready = self.gather("ready", STARTUP_TIMEOUT_S)
        if self.scenario.measures_server_memory:
            self.server_rss_before = server_rss(
                self.memory.pids, self.memory.include_children, self.memory.metrics_url
            )
        self.set_phase("connecting")
        connect_started = time.monotonic()
        self.send_all("connect")
        num_sockets = config.num_sockets + config.num_publishers
        connect_budget = config.connect_timeout_s * (1 + num_sockets / max(1, config.concurrency))
        connect_budget += sum(seconds for _, _, seconds in config.ramp)
        connected = self.gather("connected", connect_budget + REPLY_GRACE_S)
        connect_s = time.monotonic() - connect_started
        report: dict[str, Any] = {
            "scenario": config.scenario,
            "started_at": started_wall,
            "worker_pids": [ready[n]["pid"] for n in sorted(ready)],
        }
        num_connected = self.num_connected = sum(c["connected"] for c in connected.values())
        num_failed = sum(c["failed"] for c in connected.values())
        report["connections"] = {
            "target": num_sockets,
            "connected": num_connected,
            "failed": num_failed,
            "connect_s": round(connect_s, 4),
            "connect_rate_per_s": round(num_connected / connect_s, 1) if connect_s else None,
        }
        rss_client = sum(c["rss_after"] - c["rss_before"] for c in connected.values())
        report["client_memory"] = {
            "rss_delta_bytes": rss_client,
            "per_socket_bytes": round(rss_client / num_connected, 1) if num_connected else None,
        }

        self.set_phase("running")
        self.phase_start = time.monotonic()
        t0_ns = time.monotonic_ns()
        extra = self.scenario.coordinate(self, t0_ns)
        result_timeout = config.duration_s + config.drain_timeout_s + REPLY_GRACE_S
        results = self.gather("result", result_timeout)
        report["measured_s"] = round(time.monotonic() - self.phase_start, 4)
        self.set_phase("done")
        self.histograms = [r["hist"] for r in results.values()]
        report["connections_timeline"] = self.connections_timeline
        return build_report(config, report, connected, results, extra, self.timeline)

    def seconds_since_start(self) -> float:
        """Seconds since the measured phase began."""
        assert self.phase_start is not None
        return time.monotonic() - self.phase_start

    def wait_progress(self, seconds: float) -> None:
        self.next_event("__never__", time.monotonic() + seconds)

    def shutdown(self) -> None:
        self.send_all("stop")
        deadline = time.monotonic() + 10.0
        for process in self.processes:
            process.join(max(0.1, deadline - time.monotonic()))
        for process in self.processes:
            if process.is_alive():
                print(
                    f"hub bench: worker pid {process.pid} did not stop; terminating it",
                    file=sys.stderr,
                )
                process.terminate()
                process.join(5.0)
        for pipe in self.pipes:
            pipe.close()


def build_report(
    config: RunConfig,
    report: dict[str, Any],
    connected: dict[int, dict[str, Any]],
    results: dict[int, dict[str, Any]],
    extra: dict[str, Any],
    timeline: list[dict[str, Any]],
) -> dict[str, Any]:
    from hub.bench.report import assemble

    return assemble(config, report, connected, results, extra, timeline)
