"""The executors, on one worker's share: constant VUs, ramping VUs and a constant arrival
rate (as k6 names them). The schedules are pure functions; the runners start and stop the
VUs' iterations on them. VU ids are global: worker ``w`` of ``P`` owns ids ``w, w+P, ...``,
and under an arrival rate it starts the global iterations ``w, w+P, ...``, so any split
over workers (or agents) adds up to the same run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from hub.bench.script.spec import CONSTANT, RAMPING, Executor
from hub.bench.script.vu import VU

__all__ = ["run_executor", "stage_target", "worker_iterations"]

#: How often a ramp recomputes how many VUs should run.
RAMP_TICK_S = 0.05

Iterate = Callable[[VU], Awaitable[None]]


def stage_target(stages: tuple[tuple[float, int], ...], elapsed_s: float) -> float:
    """How many VUs should run ``elapsed_s`` into the stages: linear within each, from the
    previous stage's target (0 before the first)."""
    start = 0
    for seconds, target in stages:
        if elapsed_s < seconds:
            return start + (target - start) * elapsed_s / seconds
        elapsed_s -= seconds
        start = target
    return float(start)


def worker_iterations(rate: float, duration_s: float, worker: int, procs: int) -> range:
    """The global iteration numbers worker ``worker`` starts: iteration n is due n / rate
    seconds after the start."""
    return range(worker, int(rate * duration_s), procs)


async def run_executor(
    executor: Executor,
    vus: list[VU],
    iterate: Iterate,
    t0: float,
    worker: int,
    procs: int,
) -> int:
    """Run the executor on this worker's VUs from ``t0`` (time.monotonic); returns the
    arrival-rate iterations dropped for want of a free VU."""
    loop = RUNNERS.get(executor.kind)
    if loop is None:
        return await _arrival_rate(executor, vus, iterate, t0, worker, procs)
    tasks: dict[int, asyncio.Task[None]] = {}
    try:
        await loop(executor, vus, iterate, t0, tasks)
    finally:
        await _stop(tasks, executor.graceful_stop_s)
    return 0


async def _vu_loop(vu: VU, iterate: Iterate, end: float) -> None:
    vu.stopping = False
    while time.monotonic() < end and not vu.stopping:
        await iterate(vu)
        # An iteration that never waits on anything must not keep the other VUs (and the
        # worker's progress reports) off the loop.
        await asyncio.sleep(0)


async def _constant(
    executor: Executor,
    vus: list[VU],
    iterate: Iterate,
    t0: float,
    tasks: dict[int, asyncio.Task[None]],
) -> None:
    end = t0 + executor.duration_s
    for vu in vus:
        tasks[vu.id] = asyncio.create_task(_vu_loop(vu, iterate, end))
    await asyncio.sleep(max(0.0, end - time.monotonic()))


async def _ramping(
    executor: Executor,
    vus: list[VU],
    iterate: Iterate,
    t0: float,
    tasks: dict[int, asyncio.Task[None]],
) -> None:
    end = t0 + sum(seconds for seconds, _ in executor.stages)
    while True:
        now = time.monotonic()
        if now >= end:
            return
        wanted = round(stage_target(executor.stages, now - t0))
        for vu in vus:
            task = tasks.get(vu.id)
            running = task is not None and not task.done()
            if vu.id < wanted and (not running or vu.stopping):
                if running and vu.stopping:
                    vu.stopping = False  # wanted again before its last iteration ended
                else:
                    tasks[vu.id] = asyncio.create_task(_vu_loop(vu, iterate, end))
            elif vu.id >= wanted and running:
                vu.stopping = True  # it ends after its current iteration
        await asyncio.sleep(min(RAMP_TICK_S, end - now))


RUNNERS = {CONSTANT: _constant, RAMPING: _ramping}


async def _arrival_rate(
    executor: Executor, vus: list[VU], iterate: Iterate, t0: float, worker: int, procs: int
) -> int:
    free = list(reversed(vus))
    dropped = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(vu: VU) -> None:
        try:
            await iterate(vu)
        finally:
            free.append(vu)

    try:
        for number in worker_iterations(executor.rate, executor.duration_s, worker, procs):
            delay = t0 + number / executor.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if not free:
                dropped += 1
                continue
            task = asyncio.create_task(one(free.pop()))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.sleep(max(0.0, t0 + executor.duration_s - time.monotonic()))
    finally:
        await _stop({n: t for n, t in enumerate(tasks)}, executor.graceful_stop_s)
    return dropped


async def _stop(tasks: dict[int, asyncio.Task[None]], grace_s: float) -> None:
    """Let running iterations finish within ``grace_s``, then cancel the rest (each counts
    as interrupted)."""
    running = [t for t in tasks.values() if not t.done()]
    if running:
        _done, pending = await asyncio.wait(running, timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
