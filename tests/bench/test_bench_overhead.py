"""The bench's own CPU and event-loop lag (hub/bench/overhead.py)."""

from __future__ import annotations

import asyncio
import time

from hub.bench.overhead import MIN_INTERVAL_S, CpuMeter, LoopLag


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
