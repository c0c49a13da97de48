"""The coordinator: it starts the workers (``pool.py``: processes here, or on agents), paces the
phases and gathers the results.

It talks to the workers in ``messages.py``'s dataclasses (the phases are told there), and hands
the scenario's coordinator half itself, as ``scenarios/context.py``'s ``CoordinatorSide``.
"""

from __future__ import annotations

import queue
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from hub.bench.config import RunConfig
from hub.bench.hdr import value_at_percentile
from hub.bench.messages import (
    Command,
    Connect,
    Connected,
    Event,
    Failed,
    Notice,
    Progress,
    Ready,
    Result,
)
from hub.bench.pool import BenchError, LocalPool, WorkerPool
from hub.bench.report import Run, assemble
from hub.bench.scenarios import scenario_for
from hub.bench.scenarios.base import REPLY_GRACE_S
from hub.bench.schema import Report
from hub.bench.server_memory import ServerMemoryOptions
from hub.bench.stats import merge_encoded
from hub.bench.worker import run_worker

__all__ = ["BenchError", "Coordinator", "LiveState", "ServerMemoryOptions"]

E = TypeVar("E", bound=Event)

# How long a worker may take to start (spawn and imports) and to answer after its work is done.
STARTUP_TIMEOUT_S = 60.0


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
        pool: WorkerPool | None = None,
    ) -> None:
        self.config = config
        #: Where the workers run: processes here, or agents (hub/bench/agents/).
        self.pool: WorkerPool = pool or LocalPool(config, run_worker)
        self.memory = memory or ServerMemoryOptions()
        self.on_update = on_update
        vus = config.script.executor.vus if config.script else 0  # a script's VUs, at most
        self.live = LiveState(target=config.num_sockets + config.num_publishers + vus)
        self.t0 = time.monotonic()
        # Timeline: (seconds since the start of the measured phase, interval histogram)
        self.timeline: list[tuple[float, bytes]] = []
        # Sockets connected over all workers, once per interval, from the start of the run.
        self.connections_timeline: list[dict[str, float]] = []
        self.phase_start: float | None = None
        # The workers' run histograms (encoded), for the plot.
        self.histograms: list[bytes] = []
        self.scenario = scenario_for(config)
        #: The server's memory before the sockets connected, and where it was read.
        self.server_rss_before: tuple[int | None, str] = (None, "none")
        self.num_connected = 0
        self.notices: set[str] = set()  # the keys of the Notice events printed

    # Plumbing

    def send_all(self, command: Command) -> None:
        self.pool.send_all(command)

    def gather(self, kind: type[E], timeout_s: float) -> dict[int, E]:
        """Wait for one ``kind`` event from every worker, handling progress meanwhile (a
        worker on a lost agent is no longer waited for)."""
        got: dict[int, E] = {}
        deadline = time.monotonic() + timeout_s
        while not self.pool.live() <= got.keys():
            event = self.next_event(kind, deadline, until_lost=True)
            if event is not None:
                got[event.worker] = event
            elif time.monotonic() >= deadline:
                missing = sorted(self.pool.live() - set(got))
                raise BenchError(
                    f"workers {missing} sent no {kind.__name__} within {timeout_s:.0f}s"
                )
        # What a worker said before its agent was lost is not the run's: its part is told apart.
        return {number: e for number, e in got.items() if number in self.pool.live()}

    def next_event(
        self, kind: type[E] | None, deadline: float, *, until_lost: bool = False
    ) -> E | None:
        """The next ``kind`` event (None: none before ``deadline``, or with ``until_lost``, a
        worker was lost meanwhile), handling progress."""
        live = len(self.pool.live())
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (until_lost and len(self.pool.live()) < live):
                return None
            try:
                event = self.pool.get(min(remaining, 0.25))
            except queue.Empty:
                self.pool.check_alive()
                continue
            if isinstance(event, Progress):
                self.on_progress(event)
            elif isinstance(event, Notice):
                self.on_notice(event)
            elif isinstance(event, Failed):
                raise BenchError(f"worker {event.worker} failed: {event.message}")
            elif kind is not None and isinstance(event, kind):
                return event

    def on_notice(self, event: Notice) -> None:
        """Print a worker's notice, once per key however many workers send it."""
        if event.key not in self.notices:
            self.notices.add(event.key)
            print(f"hub bench: {event.text}", file=sys.stderr, flush=True)

    def on_progress(self, event: Progress) -> None:
        live, worker, data = self.live, event.worker, event.snapshot
        live.connected[worker] = data.connected
        live.failed[worker] = data.failed
        live.frames[worker] = data.frames
        live.sent[worker] = data.sent
        live.cpu[worker] = data.cpu_percent
        live.loop_lag_ms[worker] = data.loop_lag_ms
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
        if data.interval_hist:
            hist = merge_encoded([data.interval_hist])
            live.p99_us = value_at_percentile(hist, 99.0)
            if self.phase_start is not None:
                self.timeline.append((now - self.phase_start, data.interval_hist))
        if self.on_update is not None:
            self.on_update(live)

    def set_phase(self, phase: str) -> None:
        self.live.phase = phase
        if self.on_update is not None:
            self.on_update(self.live)

    # Run

    def run(self) -> Report:
        try:
            return self._run()
        finally:
            self.shutdown()

    def _run(self) -> Report:
        config = self.config
        started_wall = time.time()
        self.pool.start()
        ready = self.gather(Ready, STARTUP_TIMEOUT_S)
        if self.scenario.measures_server_memory:
            self.server_rss_before = self.memory.read()
        self.set_phase("connecting")
        connect_started = time.monotonic()
        self.send_all(Connect())
        num_sockets = config.num_sockets + config.num_publishers
        connect_budget = config.connect_timeout_s * (1 + num_sockets / max(1, config.concurrency))
        connect_budget += sum(seconds for _, _, seconds in config.ramp)
        connected = self.gather(Connected, connect_budget + REPLY_GRACE_S)
        connect_s = time.monotonic() - connect_started
        self.num_connected = sum(c.connected for c in connected.values())

        self.set_phase("running")
        measured_started_at = time.time()
        self.phase_start = time.monotonic()
        outcome = self.scenario.coordinate(self, time.monotonic_ns())
        result_timeout = config.duration_s + config.drain_timeout_s + REPLY_GRACE_S
        results = self.gather(Result, result_timeout)
        measured_s = time.monotonic() - self.phase_start
        self.set_phase("done")
        self.histograms = [r.hist for r in results.values()]
        live = self.pool.live()
        run = Run(
            started_at=started_wall,
            ready=ready,
            # A lost agent's sockets are its own part of the run, not the server's loss.
            connected={number: c for number, c in connected.items() if number in live},
            connect_s=connect_s,
            results=results,
            measured_started_at=measured_started_at,
            measured_s=measured_s,
            outcome=outcome,
            timeline=self.timeline,
            connections_timeline=self.connections_timeline,
        )
        report = assemble(config, run)
        self.pool.annotate(report, run)
        return report

    def seconds_since_start(self) -> float:
        """Seconds since the measured phase began."""
        assert self.phase_start is not None
        return time.monotonic() - self.phase_start

    def wait_progress(self, seconds: float) -> None:
        self.next_event(None, time.monotonic() + seconds)

    def shutdown(self) -> None:
        self.pool.shutdown()
