"""A worker process: it holds a share of the sockets and plays the scenario on them.

The coordinator talks to it through a pipe (commands in) and a queue (events out); see
``coordinator.py``. The sockets are ``sockets.py``'s (opened by ``connect.py``); what is done
with them is the scenario's (``scenarios/``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Protocol, TypeVar

import psutil

from hub.bench.adapted import make_receiver
from hub.bench.config import RunConfig
from hub.bench.connect import connect_all
from hub.bench.lean import Counters
from hub.bench.messages import (
    Command,
    Connect,
    Connected,
    Event,
    Failed,
    Progress,
    Ready,
    Result,
    Snapshot,
    Stop,
)
from hub.bench.overhead import CpuMeter, LoopLag, run_queue_wait_s
from hub.bench.protocols import AdapterError, adapter_for
from hub.bench.scenarios import scenario_for
from hub.bench.sizing import place, worker_indices
from hub.bench.sockets import Publisher, Receiver, Socket
from hub.bench.stats import LatencyRecorder, Ledger
from hub.bench.target import channel_url
from hub.runtime.limits import raise_open_file_limit

__all__ = ["EventQueue", "Worker", "run_worker"]

logger = logging.getLogger(__name__)

C = TypeVar("C", bound=Command)


class EventQueue(Protocol):
    def put(self, obj: Event) -> None: ...


class Worker:
    def __init__(self, config: RunConfig, index: int, commands: Connection, events: EventQueue):
        self.config = config
        self.index = index
        self.commands = commands
        self.events = events
        self.counters = Counters(config.run_id)
        self.ledger = Ledger()
        self.recorder = LatencyRecorder()
        self.receivers: list[Receiver] = []
        self.publishers: list[Publisher] = []
        self.receiver_indices: list[int] = []  # the socket numbers of ``receivers``
        self.num_failed = 0
        self.errors: Counter[str] = Counter()
        self.inbox: asyncio.Queue[Command] = asyncio.Queue()
        self.process = psutil.Process()
        self.cpu = CpuMeter()
        self.loop_lag = LoopLag()
        self.phase_cpu_s = 0.0
        self.phase_wall_s = 0.0
        self.phase_wait_s = 0.0  # waiting for a CPU (run queue) in the measured phase
        self.scenario = scenario_for(config)
        self.adapter = adapter_for(config.protocol, config.event, config.join_event)

    # Plumbing

    def emit(self, event: Event) -> None:
        self.events.put(event)

    def start_command_reader(self, loop: asyncio.AbstractEventLoop) -> None:
        def read() -> None:
            while True:
                try:
                    command: Command = self.commands.recv()
                except (EOFError, OSError):
                    command = Stop()
                loop.call_soon_threadsafe(self.inbox.put_nowait, command)
                if isinstance(command, Stop):
                    return

        threading.Thread(target=read, name="bench-commands", daemon=True).start()

    async def expect(self, *kinds: type[C]) -> C:
        """The next command of one of ``kinds``; a ``Stop`` ends the worker."""
        while True:
            command = await self.inbox.get()
            if isinstance(command, kinds):
                return command
            if isinstance(command, Stop):
                raise SystemExit(0)

    # Reporting

    def snapshot(self) -> Snapshot:
        cpu = self.cpu.sample()
        if self.scenario.has_interval_latency:
            interval = self.recorder.flush()
        else:
            interval = LatencyRecorder().total
        counters = self.counters
        return Snapshot(
            connected=self.num_connected(),
            failed=self.num_failed,
            disconnected=counters.disconnected,
            frames=counters.frames,
            payload_bytes=counters.bytes,
            sent=counters.sent,
            unique=self.ledger.unique(),
            cpu_percent=cpu,
            loop_lag_ms=round(self.loop_lag.take_interval(), 3),
            interval_hist=interval.encode() if interval.get_total_count() else b"",
            t_ns=time.monotonic_ns(),
        )

    def num_receivers_connected(self) -> int:
        return sum(1 for r in self.receivers if r.transport is not None)

    def on_connect_failure(self, exc: Exception) -> None:
        self.num_failed += 1
        # A protocol mismatch is told in words: the type alone would not say what to fix.
        self.errors[
            f"AdapterError: {exc}" if isinstance(exc, AdapterError) else type(exc).__name__
        ] += 1

    def num_connected(self) -> int:
        listeners: list[Socket] = [*self.receivers, *self.publishers]
        own = self.scenario.own_sockets()  # a script's VUs open theirs during the run
        return own + sum(1 for item in listeners if item.transport is not None)

    async def ticker(self) -> None:
        while True:
            await asyncio.sleep(self.config.interval_s)
            self.emit(Progress(self.index, self.snapshot()))

    def result(self) -> Result:
        snapshot = self.snapshot()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        wall = self.phase_wall_s
        phase_percent = 100.0 * self.phase_cpu_s / wall if wall else 0.0
        total = self.recorder.total
        return Result(
            worker=self.index,
            snapshot=snapshot,
            tally=self.ledger.tally(),
            other_frames=self.counters.other_frames,
            foreign=self.counters.foreign,
            errors=dict(self.errors),
            hist=total.encode() if total.get_total_count() else b"",
            pid=os.getpid(),
            rss_bytes=self.process.memory_info().rss,
            cpu_s=usage.ru_utime + usage.ru_stime,
            # A run shorter than one interval has no interval sample: its phase is the best one.
            cpu_percent_max=self.cpu.max or phase_percent,
            cpu_percent_phase=phase_percent,
            loop_lag=self.loop_lag.summary(),
            run_wait_percent_phase=100.0 * self.phase_wait_s / wall if wall else 0.0,
            phase_s=wall,
            receivers=len(self.receivers),
            receivers_connected=self.num_receivers_connected(),
        )

    def measure_phase(self) -> Callable[[], None]:
        """Start timing the measured phase (CPU, run-queue wait, loop lag); call the result to
        stop."""
        cpu0, wall0, wait0 = time.process_time(), time.monotonic(), run_queue_wait_s()
        self.loop_lag.start_phase()

        def stop() -> None:
            self.phase_cpu_s += time.process_time() - cpu0
            self.phase_wall_s += time.monotonic() - wall0
            wait1 = run_queue_wait_s()
            if wait0 is not None and wait1 is not None:
                self.phase_wait_s += wait1 - wait0
            self.loop_lag.stop_phase()

        return stop

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        self.start_command_reader(loop)
        self.emit(Ready(self.index, pid=os.getpid(), rss_bytes=self.process.memory_info().rss))
        self.cpu = CpuMeter()
        await self.expect(Connect)
        # Before build(): the per-socket figure includes the receiver objects themselves.
        rss_before = self.process.memory_info().rss
        listeners = self.build()
        started = time.monotonic()
        ticker = asyncio.create_task(self.ticker())
        lag_probe = asyncio.create_task(self.loop_lag.run())
        try:
            await connect_all(self.config, listeners, self.on_connect_failure)
            # What is alive now (sockets, modules) stays to the end: frozen, it is out of every
            # later collection, which would otherwise walk all of it and stall the loop.
            gc.collect()
            gc.freeze()
            self.emit(
                Connected(
                    self.index,
                    connected=self.num_connected(),
                    receivers_connected=self.num_receivers_connected(),
                    failed=self.num_failed,
                    connect_s=time.monotonic() - started,
                    rss_before=rss_before,
                    rss_after=self.process.memory_info().rss,
                )
            )
            await self.scenario.play(self)
            self.emit(self.result())
            await self.expect(Stop)
        finally:
            ticker.cancel()
            lag_probe.cancel()
            for listener in [*self.receivers, *self.publishers]:
                listener.close()

    def new_receiver(self, index: int) -> tuple[str, Receiver]:
        """A fresh receiver for socket ``index`` (not yet connected), and its URL."""
        config = self.config
        scenario = self.scenario
        channel = scenario.channel_of(index)
        tracker = self.ledger.tracker(index, scenario.num_streams())
        receiver = make_receiver(
            self.adapter,
            config.receiver_client() == "lean",
            channel,
            self.counters,
            tracker,
            self.recorder.pending.append,
        )
        scenario.prepare_receiver(self, receiver)
        url = channel_url(place(index, config.urls, config.source_addrs).url, channel, index)
        return url, receiver

    def build(self) -> list[tuple[int, str, Socket]]:
        config = self.config
        out: list[tuple[int, str, Socket]] = []
        scenario = self.scenario
        self.receiver_indices = list(worker_indices(config.num_sockets, self.index, config.procs))
        for index in self.receiver_indices:
            url, receiver = self.new_receiver(index)
            self.receivers.append(receiver)
            out.append((index, url, receiver))
        for index, url, publisher in scenario.publishers(self):
            self.publishers.append(publisher)
            out.append((index, url, publisher))
        return out

    async def drain(self, expected_unique: int) -> None:
        """Wait until every expected message is in, or the drain timeout."""
        deadline = time.monotonic() + self.config.drain_timeout_s
        # Polling, on purpose: the receive path only bumps counters, it sets no event per frame.
        while self.ledger.unique() < expected_unique and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def run_worker(config: RunConfig, index: int, commands: Connection, events: EventQueue) -> None:
    """The worker process's entry point (multiprocessing spawn target)."""
    raise_open_file_limit()
    try:
        import uvloop

        runner: Callable[[Coroutine[None, None, None]], None] = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency
        runner = asyncio.run
    worker = Worker(config, index, commands, events)
    try:
        runner(worker.main())
    except SystemExit:
        pass
    except BaseException as exc:
        logger.exception("bench worker %d failed", index)
        events.put(Failed(index, message=f"{type(exc).__name__}: {exc}"))
