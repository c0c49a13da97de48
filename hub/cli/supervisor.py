"""Runs N worker processes on one port (SO_REUSEPORT), restarts any that dies, and stops them
all on SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType

from hub.cli.embedded_redis import EmbeddedRedis
from hub.cli.orphans import make_owned_dir, remove_stale_dirs
from hub.core.backoff import backoff
from hub.core.config import METRICS_DIR_ENV, Settings
from hub.runtime.ports import EXIT_CANNOT_LISTEN
from hub.runtime.signals import ignore_signals

__all__ = ["Supervisor"]

logger = logging.getLogger(__name__)

#: A worker that dies sooner than this after its start counts as crash-looping.
STABLE_AFTER_S = 5.0
#: Where prometheus_client, on import, looks for multiprocess metric files (hub.metrics).
#: Named here so that the supervisor itself never imports prometheus_client.
#: How long workers get to close their connections with 1001 before they are killed, after
#: their --drain-s (each also ends itself after hub.app.SHUTDOWN_DEADLINE_S + --drain-s).
STOP_TIMEOUT_S = 5.0

WorkerTarget = Callable[[Settings, int], None]


class Supervisor:
    def __init__(self, settings: Settings, target: WorkerTarget) -> None:
        self.settings = settings
        self.target = target
        self.embedded: EmbeddedRedis | None = None
        self._ctx = multiprocessing.get_context("spawn")
        self._workers: dict[int, BaseProcess] = {}
        self._started_at: dict[int, float] = {}
        self._delays = {i: backoff(initial_s=0.5, max_s=10.0) for i in range(settings.num_workers)}
        self._stopping = False
        self._status = 0
        self.metrics_dir: str | None = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self._stopping:
            logger.info(
                "received %s: stopping %d workers", signal.Signals(signum).name, len(self._workers)
            )
        self._stopping = True

    def _spawn(self, index: int) -> None:
        proc = self._ctx.Process(
            target=self.target,
            args=(self.settings, index),
            name=f"hub-worker-{index}",
            daemon=False,
        )
        proc.start()
        self._workers[index] = proc
        self._started_at[index] = time.monotonic()

    def run(self) -> int:
        """Start everything and block until stopped; return the exit status."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        remove_stale_dirs()
        if self.settings.redis_url is None:
            self.embedded = EmbeddedRedis()
            self.embedded.start()
            self.settings = self.settings.replace(redis_url=self.embedded.url)
        self._create_metrics_dir()
        try:
            n = self.settings.num_workers
            logger.info("starting %d workers on %s:%d", n, self.settings.host, self.settings.port)
            for index in range(n):
                if not self._stopping:
                    self._spawn(index)
            self._watch()
        finally:
            self._stop_all()
            if self.embedded is not None:
                self.embedded.stop()
            self._remove_metrics_dir()
            ignore_signals()  # the interpreter's exit would restore their default action
        return self._status

    def _create_metrics_dir(self) -> None:
        """Give the workers a fresh directory for their metric files, so that whichever
        worker answers a scrape reports all of them. Spawned workers inherit the variable,
        and read it when they import prometheus_client."""
        preset = os.environ.get(METRICS_DIR_ENV)
        if preset:
            logger.info(
                "metrics of all workers in %s (from %s: left in place; empty it between runs)",
                preset,
                METRICS_DIR_ENV,
            )
            return
        self.metrics_dir = str(make_owned_dir("hub-metrics-"))
        os.environ[METRICS_DIR_ENV] = self.metrics_dir
        logger.info("metrics of all workers in %s", self.metrics_dir)

    def _remove_metrics_dir(self) -> None:
        if self.metrics_dir is not None:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
            os.environ.pop(METRICS_DIR_ENV, None)
            self.metrics_dir = None

    def _mark_dead(self, proc: BaseProcess) -> None:
        """Drop a dead worker's live gauges (its counters still count in the totals)."""
        if proc.pid is None or not os.environ.get(METRICS_DIR_ENV):
            return
        from prometheus_client.multiprocess import mark_process_dead

        try:
            mark_process_dead(proc.pid)  # type: ignore[no-untyped-call]
        except OSError as exc:
            logger.warning("cannot drop the metrics of dead worker %s: %s", proc.pid, exc)

    def _watch(self) -> None:
        restart_at: dict[int, float] = {}
        while not self._stopping:
            sentinels = [p.sentinel for p in self._workers.values() if p.is_alive()]
            if sentinels:
                multiprocessing.connection.wait(sentinels, timeout=0.5)
            else:
                time.sleep(0.1)
            if self._stopping:
                return
            if self.embedded is not None:
                self.embedded.restart_if_dead()
            now = time.monotonic()
            for index, proc in list(self._workers.items()):
                if proc.is_alive() or index in restart_at:
                    continue
                self._mark_dead(proc)
                if proc.exitcode == EXIT_CANNOT_LISTEN:
                    # It said why (a port taken since the supervisor checked it): another
                    # worker would fail alike, so the hub stops, with the worker's status.
                    logger.error("worker %d cannot listen; stopping the hub", index)
                    self._status = EXIT_CANNOT_LISTEN
                    self._stopping = True
                    return
                lived = now - self._started_at[index]
                if lived > STABLE_AFTER_S:
                    self._delays[index] = backoff(initial_s=0.5, max_s=10.0)
                delay = next(self._delays[index]) if lived <= STABLE_AFTER_S else 0.0
                logger.error(
                    "worker %d (pid %s) exited with %s after %.1fs; restarting in %.1fs",
                    index,
                    proc.pid,
                    proc.exitcode,
                    lived,
                    delay,
                )
                restart_at[index] = now + delay
            for index, when in list(restart_at.items()):
                if now >= when:
                    del restart_at[index]
                    self._spawn(index)

    def _stop_all(self) -> None:
        for proc in self._workers.values():
            if proc.is_alive() and proc.pid is not None:
                proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S + self.settings.drain_s
        for proc in self._workers.values():
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                logger.warning("worker %s did not stop in time; killing it", proc.name)
                proc.kill()
                proc.join()
