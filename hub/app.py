"""Wiring for one worker process: broker, node, WebSocket server, signals, uvloop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import uvloop

from hub import wiring
from hub.brokers import Broker
from hub.core.addresses import is_loopback
from hub.core.config import Settings
from hub.metrics import Figures
from hub.runtime.limits import raise_open_file_limit
from hub.runtime.ports import EXIT_CANNOT_LISTEN, CannotListen, listeners
from hub.runtime.signals import hold_signals, ignore_once_stopping, release_signals
from hub.ws.connection import HubConnection
from hub.ws.routes import AdminGuard, Routes
from hub.ws.server import add_health_routes

__all__ = ["SHUTDOWN_DEADLINE_S", "App", "run_worker"]

logger = logging.getLogger(__name__)

#: Files a worker keeps for itself (Redis, logs, listening socket, Python's own).
RESERVED_FILES = 64
#: The busiest channels of the answering worker that /stats lists.
STATS_CHANNELS = 50
#: How long a worker may take to exit once it is told to stop (or its start fails).
SHUTDOWN_DEADLINE_S = 4.5
#: How long a stopping worker waits for its broker to close.
BROKER_CLOSE_TIMEOUT_S = 1.0


class App:
    """One worker: builds the broker, node and server from Settings, and runs until stopped."""

    def __init__(
        self,
        settings: Settings,
        *,
        worker: int = 0,
        reuse_port: bool = False,
        supervised: bool = False,
    ) -> None:
        self.settings = settings
        self.worker = worker
        self.reuse_port = reuse_port
        self.supervised = supervised
        self.metrics = wiring.worker_metrics(
            settings,
            worker,
            read=self._figures,
            channels=lambda: self.node.channels(),
            take_channel_messages=lambda: self.node.take_channel_messages(),
        )
        engines = wiring.engines(settings, self.metrics)
        self.broker: Broker = engines.broker
        self.node = wiring.node(settings, engines, self.metrics)
        self.routes = Routes(
            AdminGuard(token=settings.admin_token or None, is_open=is_loopback(settings.host))
        )
        add_health_routes(
            self.routes,
            not_ready=self._not_ready,
            metrics=self.metrics.exposition,
            stats=self._stats,
        )
        #: The backend's hooks, only when some --proxy-*-url is set: otherwise no session,
        #: and no check anywhere.
        self.hooks = wiring.hooks(settings, self.metrics)
        self.jwks = wiring.jwks(settings)
        authenticator = wiring.authenticator(settings, self.jwks)
        self.handler = wiring.handler(settings, self.node, self.routes, authenticator, self.hooks)
        self.api = wiring.api(settings, self.node, authenticator, self.hooks)
        self.server = wiring.server(settings, self.handler)
        self.stopping = asyncio.Event()
        #: Told to stop and still serving for --drain-s, with /readyz at 503 (see run).
        self.draining = False
        #: The process's exit status once run() returns or raises.
        self.exit_status = 0
        self._metrics_task: asyncio.Task[None] | None = None

    def _stats(self) -> dict[str, Any]:
        """/stats: the figures of every worker, their busiest channels and last minutes, and
        Redis' memory and clients (``WorkerMetrics.stats``); and the API's port, if any (the
        dashboard's operator actions call it)."""
        doc = self.metrics.stats()
        doc["api_port"] = self.settings.api_port or None
        return doc

    def _figures(self) -> Figures:
        """The plain counters of the node, the broker and the handler, for the metrics."""
        node, stats, handler = self.node, self.broker.stats, self.handler
        return Figures(
            connections=handler.num_connections,
            subscriptions=node.num_subscriptions,
            channels=node.num_channels,
            broker_ready=node.is_ready,
            connections_opened=handler.num_opened,
            received=node.num_received,
            published=stats.num_published,
            delivered=node.num_delivered,
            dropped_publish_buffer_full=stats.num_dropped,
            dropped_rate_limited=node.num_rate_limited,
            slow_consumer_disconnects=node.num_slow_consumers + HubConnection.num_overflows,
            broker_reconnects=stats.num_reconnects,
            broker_publish_errors=stats.num_publish_errors,
            broker_gaps=stats.num_gaps,
            broker_probe_failures=stats.num_probe_failures,
            history_repaired=node.history.num_repaired,
            history_gaps=node.num_unrepaired_gaps,
            history_forged=node.history.num_forged,
            sse_streams=len(self.api.sse.clients) if self.api else 0,
            sse_streams_opened=self.api.sse.num_streams_total if self.api else 0,
            hook_calls=self._hook_figures("calls"),
            hook_errors=self._hook_figures("errors"),
        )

    def _hook_figures(self, kind: str) -> tuple[tuple[str, int], ...]:
        hooks = self.hooks
        if hooks is None:
            return ()
        counts = hooks.calls if kind == "calls" else hooks.errors
        return tuple((hook, counts[hook]) for hook in hooks.urls)

    async def start(self) -> None:
        """Start the broker, then listen; a port that cannot be bound raises CannotListen."""
        s = self.settings
        capacity = raise_open_file_limit() - RESERVED_FILES
        await self.node.start()
        if self.jwks is not None:
            await self.jwks.start()  # a failure is logged; the first handshake tries again
        self._metrics_task = asyncio.create_task(self.metrics.run())
        ws, api = listeners(s)[0], listeners(s)[1:]
        try:
            await self.server.start(s.host, s.port, reuse_port=self.reuse_port)
        except OSError as exc:
            raise CannotListen(ws, exc, reuse_port=s.reuse_port) from None
        if self.api is not None:
            try:
                await self.api.start(s.api_host, s.api_port, reuse_port=self.reuse_port)
            except OSError as exc:
                raise CannotListen(api[0], exc, reuse_port=s.reuse_port) from None
        logger.info(
            "worker %d serving %s://%s:%d (broker %s, capacity %d connections: the open-file "
            "limit; run more workers for more)",
            self.worker,
            "wss" if s.tls_cert else "ws",
            s.host,
            self.port,
            type(self.broker).__name__,
            capacity,
        )

    @property
    def port(self) -> int:
        return self.server.port

    async def run(self, *, on_started: Callable[[App], None] | None = None) -> None:
        """Start, serve until SIGTERM or SIGINT, and stop. A signal during start-up (the broker
        still connecting) stops it too; a start that fails (CannotListen) stops what it had
        started before it raises."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        release_signals()  # held by run_worker until the loop's handlers were in place
        starting = asyncio.create_task(self.start())
        told = asyncio.create_task(self.stopping.wait())
        watcher: asyncio.Task[None] | None = None
        try:
            await asyncio.wait({starting, told}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                logger.info("worker %d told to stop while it was starting", self.worker)
                return
            starting.result()
            if on_started is not None:
                on_started(self)
            if self.supervised:
                watcher = asyncio.create_task(self._watch_parent())
            await told
            await self._drain()
        except CannotListen as exc:
            logger.error("%s", exc)  # now: the shutdown that follows may be cut short
            self.exit_status = EXIT_CANNOT_LISTEN
            raise
        finally:
            self.stopping.set()  # for whoever waits on it, e.g. run_worker's deadline
            for task in (starting, told, watcher):
                if task is not None:
                    task.cancel()
            await asyncio.wait({starting}, timeout=1.0)  # a start cut short winds down first
            await self.stop()

    def _not_ready(self) -> str | None:
        """Why /readyz answers 503 (None: it answers 200)."""
        if self.draining:
            return "draining: this hub is shutting down (SIGTERM, --drain-s)"
        if not self.node.is_ready:
            return "the broker is not connected (or is deaf)"
        return None

    async def _drain(self) -> None:
        """Go on serving for --drain-s with /readyz at 503: a load balancer's health check
        takes this hub out of rotation while its sockets are still open, so no new client is
        routed to a hub that is about to close it with 1001."""
        if self.settings.drain_s <= 0:
            return
        self.draining = True
        logger.info(
            "worker %d draining: /readyz answers 503 for %.1fs before the connections close",
            self.worker,
            self.settings.drain_s,
        )
        await asyncio.sleep(self.settings.drain_s)

    async def _watch_parent(self) -> None:
        """A worker whose supervisor died stops too, instead of serving on unsupervised."""
        parent = os.getppid()
        while True:
            await asyncio.sleep(1.0)
            if os.getppid() != parent:
                logger.warning("supervisor %d is gone; worker %d stopping", parent, self.worker)
                self.stopping.set()
                return

    async def stop(self) -> None:
        logger.info("worker %d shutting down: closing connections with 1001", self.worker)
        await self.server.stop()
        if self.api is not None:
            await self.api.stop()
        for closing in (self.hooks, self.jwks):
            if closing is not None:
                await closing.close()
        try:
            await asyncio.wait_for(self.node.close(), BROKER_CLOSE_TIMEOUT_S)
        except TimeoutError:
            logger.warning(
                "the broker did not close within %.1fs; leaving it", BROKER_CLOSE_TIMEOUT_S
            )
        if self._metrics_task is not None:
            self._metrics_task.cancel()
        try:
            self.metrics.sync()  # the last counts, for the workers that outlive this one
        except Exception:
            logger.exception("the last metrics sync failed")


def run_worker(
    settings: Settings, *, worker: int = 0, reuse_port: bool = False, supervised: bool = False
) -> int:
    """Run one worker on uvloop until SIGTERM or SIGINT; its exit status: 0, or
    EXIT_CANNOT_LISTEN (after one logged line that says why) when a port cannot be bound.

    Once it is told to stop, or its start fails, the process has SHUTDOWN_DEADLINE_S to wind
    down; past that it exits anyway, so that nothing (a task that will not be cancelled, a
    broker that does not answer) keeps a stopping hub alive."""
    deadline: list[threading.Timer] = []

    async def main() -> None:
        app = App(settings, worker=worker, reuse_port=reuse_port, supervised=supervised)

        def arm(_: object = None) -> None:
            if not deadline:
                after = SHUTDOWN_DEADLINE_S + settings.drain_s
                deadline.append(_exit_after(after, app.exit_status, worker))

        told = asyncio.create_task(app.stopping.wait())
        told.add_done_callback(arm)
        try:
            await app.run()
        finally:
            arm()  # and the loop's own teardown (cancelling what is left) is bounded too
            ignore_once_stopping(asyncio.get_running_loop())
            await _end_leftovers(app.exit_status, worker)

    hold_signals()  # until App.run has given them to the loop
    try:
        uvloop.run(main())
    except CannotListen:  # App.run logged why
        return EXIT_CANNOT_LISTEN
    finally:
        for timer in deadline:
            timer.cancel()
    return 0


async def _end_leftovers(status: int, worker: int) -> None:
    """Cancel the tasks still running once the worker has stopped; if some will not end (a
    broker task that ignores its cancellation), exit now instead of waiting for them."""
    rest = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in rest:
        task.cancel()
    if rest:
        _, pending = await asyncio.wait(rest, timeout=0.5)
        if pending:
            logger.warning(
                "worker %d: %d tasks did not end when cancelled; exiting anyway",
                worker,
                len(pending),
            )
            _flush_and_exit(status)


def _flush_and_exit(status: int) -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(status)


def _exit_after(seconds: float, status: int, worker: int) -> threading.Timer:
    """A daemon timer that ends the process with ``status`` after ``seconds``."""

    def exit_now() -> None:
        logger.error(
            "worker %d did not stop within %.1fs; exiting without waiting for the rest",
            worker,
            seconds,
        )
        _flush_and_exit(status or 1)  # 1: it was told to stop, and did not in time

    timer = threading.Timer(seconds, exit_now)
    timer.daemon = True
    timer.start()
    return timer
