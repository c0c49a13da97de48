"""The bench's own CPU, event-loop lag and run-queue wait, and the verdict on whether it was
the bottleneck (hub/bench/overhead.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from hub.bench.overhead import (
    BUSY_PERCENT,
    LAG_FLOOR_MS,
    LAG_SHARE,
    MIN_INTERVAL_S,
    MIN_PHASE_S,
    CpuMeter,
    LoopLag,
    bench_bound,
    run_queue_wait_s,
)
from hub.bench.schema import Section


def spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_cpu_is_one_core_at_most_and_a_short_interval_is_no_spike() -> None:
    """A single-threaded spin is at most 100% of a core (psutil's tick counters said up to
    472% over the short last interval); a sample right after repeats the last figure."""
    meter = CpuMeter()
    spin(MIN_INTERVAL_S * 1.5)
    busy = meter.sample()
    assert 0 < busy <= 102
    spin(0.005)
    assert meter.sample() == busy
    assert meter.max == busy


def test_a_blocked_loop_shows_as_lag() -> None:
    """A callback that holds the loop for 60 ms is seen as at least 45 ms of lag."""
    lag = LoopLag()

    async def main() -> None:
        probe = asyncio.create_task(lag.run())
        await asyncio.sleep(0.03)
        time.sleep(0.06)  # the loop's own work, blocking it
        await asyncio.sleep(0.03)
        probe.cancel()

    asyncio.run(main())
    assert lag.max_ms >= 45
    assert lag.take_interval() >= 45
    assert lag.take_interval() == 0.0
    assert lag.summary()["max_ms"] == round(lag.max_ms, 3)


def test_the_lag_summary_covers_the_measured_phase_only() -> None:
    """Lag while connecting (before start_phase) or after the phase is not in the summary;
    the p99 is the phase's."""
    lag = LoopLag()
    lag.record(500.0)  # connecting
    lag.start_phase()
    for value in [1.0] * 98 + [7.0, 9.0]:
        lag.record(value)
    lag.stop_phase()
    lag.record(300.0)  # after
    summary = lag.summary()
    assert (summary["max_ms"], summary["mean_ms"]) == (9.0, 1.14)  # exact
    assert summary["p99_ms"] == pytest.approx(7.0, abs=0.01)  # the histogram's 3 digits
    assert lag.max_ms == 500.0  # the live display still sees every probe


def test_run_queue_wait_is_read() -> None:
    wait = run_queue_wait_s()
    assert wait is not None and wait >= 0.0


def proc(
    worker: int = 0, cpu: float = 20.0, wait: float = 5.0, lag_p99: float = 1.0, phase_s: float = 6
) -> Section:
    return {
        "worker": worker,
        "phase_s": phase_s,
        "cpu_percent_phase": cpu,
        "run_wait_percent_phase": wait,
        "loop_lag_ms": {"max_ms": lag_p99 * 2, "mean_ms": 0.5, "p99_ms": lag_p99},
    }


def test_a_calm_bench_is_not_the_bottleneck() -> None:
    assert bench_bound([proc(), proc(1)], latency_p99_us=12_000) == []
    # Lag under the floor, even when it is most of a small tail.
    assert bench_bound([proc(lag_p99=LAG_FLOOR_MS - 0.5)], latency_p99_us=2_000) == []
    # Lag over the floor but a small share of a large tail (the server's).
    assert bench_bound([proc(lag_p99=10.0)], latency_p99_us=100_000) == []


def test_a_phase_too_short_is_not_judged() -> None:
    """Under MIN_PHASE_S, a handful of probes make no p99, nor a few busy intervals a trend."""
    short = proc(cpu=99.0, lag_p99=50.0, phase_s=MIN_PHASE_S - 0.1)
    assert bench_bound([short], latency_p99_us=10_000) == []
    assert len(bench_bound([proc(cpu=99.0, lag_p99=50.0)], latency_p99_us=10_000)) == 2


def test_a_busy_worker_is_the_bottleneck_on_cpu_or_waiting_for_one() -> None:
    """Work over 90% of the phase: on a CPU, or runnable and waiting for one."""
    assert bench_bound([proc(cpu=95.0, wait=0.0)], latency_p99_us=10_000) == [
        "worker 0 had work 95% of the time (CPU 95%, waiting for a CPU 0%)"
    ]
    assert bench_bound([proc(1, cpu=30.0, wait=65.0)], latency_p99_us=10_000) == [
        "worker 1 had work 95% of the time (CPU 30%, waiting for a CPU 65%)"
    ]
    assert bench_bound([proc(cpu=60.0, wait=BUSY_PERCENT - 60.0)], 10_000) == []


def test_a_lagging_loop_is_the_bottleneck_when_it_is_part_of_the_tail() -> None:
    """Over the floor and over LAG_SHARE of the latency p99."""
    p99_us = 20_000
    over = LAG_SHARE * p99_us / 1000 + 0.5
    assert bench_bound([proc(), proc(1, lag_p99=over)], latency_p99_us=p99_us) == [
        f"worker 1's event loop lagged {over:.1f} ms at p99 (up to {over * 2:.1f} ms)"
    ]
    # No latency at all: nothing to distort (a busy worker is still the bottleneck).
    assert bench_bound([proc(lag_p99=LAG_FLOOR_MS + 1)], latency_p99_us=None) == []
    assert bench_bound([proc(cpu=99.0, lag_p99=50.0)], latency_p99_us=None) == [
        "worker 0 had work 100% of the time (CPU 99%, waiting for a CPU 5%)"
    ]
