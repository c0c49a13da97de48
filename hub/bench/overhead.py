"""The bench's own overhead, per worker process: its CPU and its event loop's lag.

Both say whether the figures are the server's or the bench's: a worker whose loop runs late
timestamps its receptions late, so its latencies include its own delay.

CPU is measured with ``time.process_time()`` (CLOCK_PROCESS_CPUTIME_ID, nanosecond resolution)
over wall-clock intervals, not with psutil's ``cpu_percent``: that one reads tick-based
counters, so over the short interval between the last progress report and the final result it
gave figures such as 472% for one single-threaded process. An interval shorter than
:data:`MIN_INTERVAL_S` is not a sample of its own: it is folded into the next one.

The loop lag is how late a ``sleep(PROBE_S)`` wakes up: the time the loop spent on other work
(receiving, histogram flushes, snapshots) before it could run a ready callback.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["PROBE_S", "CpuMeter", "LoopLag"]

MIN_INTERVAL_S = 0.1
PROBE_S = 0.01


class CpuMeter:
    """The process's CPU percent per interval (100 = one core), and its highest interval."""

    def __init__(self) -> None:
        self._cpu = time.process_time()
        self._wall = time.monotonic()
        self.last = 0.0
        self.max = 0.0

    def sample(self) -> float:
        """The CPU percent since the last sample (or the last one, when too little time passed)."""
        cpu, wall = time.process_time(), time.monotonic()
        elapsed = wall - self._wall
        if elapsed < MIN_INTERVAL_S:
            return self.last
        self.last = 100.0 * (cpu - self._cpu) / elapsed
        self.max = max(self.max, self.last)
        self._cpu, self._wall = cpu, wall
        return self.last


class LoopLag:
    """Probes the running loop's lag; ``interval_max_ms`` restarts at each ``take_interval``."""

    def __init__(self) -> None:
        self.max_ms = 0.0
        self.interval_max_ms = 0.0
        self.total_ms = 0.0
        self.probes = 0

    async def run(self) -> None:
        while True:
            due = time.monotonic() + PROBE_S
            await asyncio.sleep(PROBE_S)
            self.record(max(0.0, (time.monotonic() - due) * 1000.0))

    def record(self, lag_ms: float) -> None:
        self.probes += 1
        self.total_ms += lag_ms
        self.interval_max_ms = max(self.interval_max_ms, lag_ms)
        self.max_ms = max(self.max_ms, lag_ms)

    def take_interval(self) -> float:
        """The highest lag since the last call, in ms."""
        value, self.interval_max_ms = self.interval_max_ms, 0.0
        return value

    def summary(self) -> dict[str, float]:
        mean = self.total_ms / self.probes if self.probes else 0.0
        return {"max_ms": round(self.max_ms, 3), "mean_ms": round(mean, 3)}
