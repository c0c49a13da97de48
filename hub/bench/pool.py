"""Where the coordinator's workers run: :class:`LocalPool` spawns them as processes of this
machine; ``agents/controller.py``'s pool runs them on agents, other machines. The coordinator
sees either through :class:`WorkerPool` only.

Workers are numbered over the whole run (``0 .. config.procs - 1``), and each one takes its
share of the sockets by its number (``sizing.worker_indices``). A pool may run any subset of
the numbers: an agent runs its own share's, with the config of the whole run.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, Protocol

from hub.bench.config import RunConfig
from hub.bench.messages import Command, Event, Stop
from hub.bench.report import Run
from hub.bench.schema import Report

__all__ = ["BenchError", "LocalPool", "WorkerPool", "WorkerTarget"]

#: A worker process's entry point: (config, worker number, command pipe, event queue).
WorkerTarget = Callable[[RunConfig, int, Connection, Any], None]

# How long a worker has to exit after Stop before it is terminated.
STOP_TIMEOUT_S = 10.0


class BenchError(RuntimeError):
    """The run could not go on: a worker failed or stopped answering."""


class WorkerPool(Protocol):
    """The coordinator's workers, wherever they run."""

    def start(self) -> None: ...

    def live(self) -> set[int]:
        """The numbers of the workers still running (not on a lost agent)."""
        ...

    def send_all(self, command: Command) -> None: ...

    def get(self, timeout_s: float) -> Event:
        """The next event of any worker; ``queue.Empty`` when none came in ``timeout_s``."""
        ...

    def check_alive(self) -> None:
        """Raise BenchError when a worker died in a way that ends the run."""
        ...

    def annotate(self, report: Report, run: Run) -> None:
        """Add what the pool knows to the finished report (agents: one row each)."""
        ...

    def shutdown(self) -> None: ...


class LocalPool:
    """Worker processes on this machine, spawned; ``numbers`` are the workers it runs
    (default: all of ``config.procs``)."""

    def __init__(
        self, config: RunConfig, target: WorkerTarget, numbers: Sequence[int] | None = None
    ) -> None:
        self.config = config
        self.target = target
        self.numbers = list(range(config.procs) if numbers is None else numbers)
        self.ctx = multiprocessing.get_context("spawn")
        self.events: multiprocessing.Queue[Event] = self.ctx.Queue()
        self.pipes: list[Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []

    def start(self) -> None:
        for number in self.numbers:
            parent, child = self.ctx.Pipe()
            process = self.ctx.Process(
                target=self.target,
                args=(self.config, number, child, self.events),
                name=f"hub-bench-{number}",
                daemon=True,
            )
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)

    def live(self) -> set[int]:
        return set(self.numbers)

    def send_all(self, command: Command) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(command)
            except (BrokenPipeError, OSError):
                pass

    def get(self, timeout_s: float) -> Event:
        return self.events.get(timeout=timeout_s)

    def check_alive(self) -> None:
        for number, process in zip(self.numbers, self.processes, strict=False):
            if process.exitcode not in (None, 0):
                raise BenchError(f"worker {number} exited with code {process.exitcode}")

    def annotate(self, report: Report, run: Run) -> None:
        """Local workers add nothing: the report already has them."""

    def shutdown(self) -> None:
        self.send_all(Stop())
        deadline = time.monotonic() + STOP_TIMEOUT_S
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
