"""The bench's own overhead, per worker process: its CPU and its event loop's lag.

Both say whether the figures are the server's or the bench's: a worker whose loop runs late
timestamps its receptions late, so its latencies include its own delay.

CPU is measured with ``time.process_time()`` (CLOCK_PROCESS_CPUTIME_ID, nanosecond resolution)
over wall-clock intervals, not with psutil's ``cpu_percent``: that one reads tick-based
counters, so over the short interval between the last progress report and the final result it
gave figures such as 472% for one single-threaded process. An interval shorter than
:data:`MIN_INTERVAL_S` is not a sample of its own: it is folded into the next one.

The loop lag is how late a ``sleep(PROBE_S)`` wakes up: the time the loop spent on other work
(receiving, histogram flushes, snapshots) before it could run a ready callback, or waited for a
CPU. Its summary covers the measured phase (connecting lags the loop too, and times nothing).

The run-queue wait (``/proc/self/schedstat``'s second field: time runnable but not running) is
the CPU a worker wanted and did not get: a worker at 40% CPU that waited 55% of the time for a
core had work all along, like one at 95% CPU.

:func:`bench_bound` turns these into the verdict the table and ``--strict`` use.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from hub.bench.hdr import value_at_percentile
from hub.bench.schema import Section
from hub.bench.stats import HIGHEST_US, new_histogram

__all__ = [
    "BUSY_PERCENT",
    "LAG_FLOOR_MS",
    "LAG_SHARE",
    "MIN_PHASE_S",
    "PROBE_S",
    "CpuMeter",
    "LoopLag",
    "bench_bound",
    "run_queue_wait_s",
]

MIN_INTERVAL_S = 0.1
PROBE_S = 0.01

#: A worker that had work (on a CPU or waiting for one) this share of its measured phase could
#: not have taken more: the load it made, and what it measured, were its own limit.
BUSY_PERCENT = 90.0
#: A loop lag at p99 above both of these distorts the latency's tail: it is in every timestamp
#: taken meanwhile. 5 ms is the error the bench allows itself against an independent receiver.
LAG_FLOOR_MS = 5.0
LAG_SHARE = 0.25
#: A shorter measured phase is too short to tell: a hundred probes make a p99.
MIN_PHASE_S = 1.0

_SCHEDSTAT = Path("/proc/self/schedstat")


def run_queue_wait_s() -> float | None:
    """Seconds this process's main thread has waited for a CPU, or None where not told."""
    try:
        return int(_SCHEDSTAT.read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


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
    """Probes the running loop's lag; ``interval_max_ms`` restarts at each ``take_interval``.
    Between ``start_phase`` and ``stop_phase`` each probe also goes into the phase's figures:
    a histogram (its p99; bounded, however long the run) and an exact max and mean."""

    def __init__(self) -> None:
        self.max_ms = 0.0
        self.interval_max_ms = 0.0
        self.total_ms = 0.0
        self.probes = 0
        self.phase = new_histogram()  # the measured phase's probes, in µs
        self.phase_max_ms = 0.0
        self.phase_total_ms = 0.0
        self.measuring = False

    async def run(self) -> None:
        while True:
            due = time.monotonic() + PROBE_S
            await asyncio.sleep(PROBE_S)
            self.record(max(0.0, (time.monotonic() - due) * 1000.0))

    def start_phase(self) -> None:
        self.measuring = True

    def stop_phase(self) -> None:
        self.measuring = False

    def record(self, lag_ms: float) -> None:
        self.probes += 1
        self.total_ms += lag_ms
        self.interval_max_ms = max(self.interval_max_ms, lag_ms)
        self.max_ms = max(self.max_ms, lag_ms)
        if self.measuring:
            self.phase.record_value(min(max(1, int(lag_ms * 1000)), HIGHEST_US))
            self.phase_max_ms = max(self.phase_max_ms, lag_ms)
            self.phase_total_ms += lag_ms

    def take_interval(self) -> float:
        """The highest lag since the last call, in ms."""
        value, self.interval_max_ms = self.interval_max_ms, 0.0
        return value

    def summary(self) -> dict[str, float]:
        """``max_ms``, ``mean_ms`` and ``p99_ms`` over the measured phase (over the whole run
        when no phase was measured)."""
        probes = self.phase.get_total_count()
        if not probes:
            mean = self.total_ms / self.probes if self.probes else 0.0
            return {"max_ms": round(self.max_ms, 3), "mean_ms": round(mean, 3), "p99_ms": 0.0}
        p99_ms = min(value_at_percentile(self.phase, 99.0) / 1000, self.phase_max_ms)
        return {
            "max_ms": round(self.phase_max_ms, 3),
            "mean_ms": round(self.phase_total_ms / probes, 3),
            "p99_ms": round(p99_ms, 3),
        }


def bench_bound(procs: list[Section], latency_p99_us: int | None) -> list[str]:
    """Why the bench itself was the bottleneck of its measured phase; empty when it was not.

    ``procs`` are the report's ``client.procs`` rows. A worker is the bottleneck when it had
    work nearly all the time (CPU plus run-queue wait over :data:`BUSY_PERCENT`: it could not
    keep up, so a backlog grew), or when its loop's lag at p99 passed :data:`LAG_FLOOR_MS` and
    :data:`LAG_SHARE` of the latency p99 (the tail is then partly its own delay; a run that
    timed nothing has no tail to distort). A worker whose measured phase was under
    :data:`MIN_PHASE_S` is not judged."""
    reasons = []
    p99_ms = (latency_p99_us or 0) / 1000
    for proc in procs:
        worker = proc["worker"]
        if proc.get("phase_s", 0.0) < MIN_PHASE_S:
            continue
        cpu = proc.get("cpu_percent_phase", 0.0)
        wait = proc.get("run_wait_percent_phase", 0.0)
        if cpu + wait > BUSY_PERCENT:
            # process_time counts every thread, the wait the main one's: the sum may pass 100.
            reasons.append(
                f"worker {worker} had work {min(100.0, cpu + wait):.0f}% of the time "
                f"(CPU {cpu:.0f}%, waiting for a CPU {wait:.0f}%)"
            )
        lag = proc.get("loop_lag_ms") or {}
        lag_p99 = lag.get("p99_ms", 0.0)
        if latency_p99_us is not None and lag_p99 > max(LAG_FLOOR_MS, LAG_SHARE * p99_ms):
            reasons.append(
                f"worker {worker}'s event loop lagged {lag_p99:.1f} ms at p99 "
                f"(up to {lag.get('max_ms', 0.0):.1f} ms)"
            )
    return reasons
