"""``conns``: open the sockets, hold them, and measure what each one costs the server."""

from __future__ import annotations

import asyncio
import contextlib
import time

from hub.bench.config import RunConfig
from hub.bench.connect import connect_all
from hub.bench.messages import ChurnDone, Finish, Start
from hub.bench.scenarios.base import REPLY_GRACE_S, Scenario
from hub.bench.scenarios.context import CoordinatorSide, Outcome, WorkerSide
from hub.bench.schema import Section
from hub.bench.stats import merge_encoded, new_histogram, summarize

__all__ = ["Churn", "Conns"]


class Churn:
    """Close and reopen this worker's sockets in turn, on a schedule; time each handshake
    (connect to upgrade done) in µs."""

    def __init__(self) -> None:
        self.cycles = 0
        self.failed = 0
        self.hist = new_histogram()

    def on_failure(self, exc: Exception) -> None:
        self.failed += 1

    async def run(self, worker: WorkerSide, config: RunConfig) -> None:
        period_s = config.procs / config.churn_rate
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        indices = worker.receiver_indices
        turn = 0
        while True:
            turn += 1
            await asyncio.sleep(max(0.0, t0 + turn * period_s - loop.time()))
            slot = turn % len(worker.receivers)
            worker.receivers[slot].close()
            url, receiver = worker.new_receiver(indices[slot])
            worker.receivers[slot] = receiver
            failed = self.failed
            started = time.monotonic_ns()
            await connect_all(config, [(indices[slot], url, receiver)], self.on_failure)
            self.cycles += 1
            if self.failed == failed:
                self.hist.record_value(max(1, (time.monotonic_ns() - started) // 1000))

    def result(self, worker: int) -> ChurnDone:
        count = self.hist.get_total_count()
        return ChurnDone(
            worker=worker,
            cycles=self.cycles,
            failed=self.failed,
            hist=self.hist.encode() if count else b"",
        )


class Conns(Scenario):
    name = "conns"
    measures_server_memory = True

    async def play(self, worker: WorkerSide) -> None:
        await worker.expect(Start)
        stop_phase = worker.measure_phase()
        churn = Churn()
        task = None
        if self.config.churn_rate and worker.receivers:
            task = asyncio.create_task(churn.run(worker, self.config))
        await worker.expect(Finish)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            worker.emit(churn.result(worker.index))
        stop_phase()

    def coordinate(self, coordinator: CoordinatorSide, t0_ns: int) -> Outcome:
        memory = coordinator.memory
        coordinator.send_all(Start(t0_ns))
        coordinator.wait_progress(memory.settle_s)
        rss_after, _ = memory.read()
        coordinator.set_phase("holding")
        coordinator.wait_progress(max(0.0, memory.hold_s - memory.settle_s))
        coordinator.send_all(Finish())
        rss_before, source = coordinator.server_rss_before
        num_connected = coordinator.num_connected
        server_memory = {
            "source": source,
            "rss_before_bytes": rss_before,
            "rss_after_bytes": rss_after,
            "per_connection_bytes": (
                round((rss_after - rss_before) / num_connected, 1)
                if rss_before is not None and rss_after is not None and num_connected
                else None
            ),
        }
        churn = self.churn(coordinator) if self.config.churn_rate else None
        if memory.errors:  # the first reason; the report warns once, not per read
            server_memory["error"] = memory.errors[0]
        return Outcome(churn=churn, server_memory=server_memory)

    def churn(self, coordinator: CoordinatorSide) -> Section:
        """The report's ``churn``: the workers' reconnections, and the server's RSS after."""
        got = coordinator.gather(ChurnDone, REPLY_GRACE_S)
        handshake_us = summarize(merge_encoded([g.hist for g in got.values()]))
        return {
            "rate_per_s": self.config.churn_rate,
            "cycles": sum(g.cycles for g in got.values()),
            "failed": sum(g.failed for g in got.values()),
            # The server's RSS at the end of the hold: growth past rss_after is a leak.
            "server_rss_end_bytes": coordinator.memory.read()[0],
            "handshake_ms": {
                k: (None if v is None else round(v / 1000, 3))
                for k, v in handshake_us.items()
                if k != "count"
            },
        }
