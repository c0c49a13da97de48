"""The script engine on one worker: it loads the script from its text, makes this worker's
VUs, opens their connections, runs each iteration (an exception is counted, and the first
of each distinct error is told once), and hands back the worker's :class:`ScriptTotals`."""

from __future__ import annotations

import asyncio
import ssl
import time
import traceback
from collections.abc import Callable
from urllib.parse import urlsplit

from hub.bench.config import RunConfig
from hub.bench.lean import Counters
from hub.bench.script.conn import Conn, ConnectError, open_socket
from hub.bench.script.executors import run_executor
from hub.bench.script.load import load_script
from hub.bench.script.protocols import codec_for
from hub.bench.script.spec import ScriptSpec
from hub.bench.script.totals import ITERATION_DURATION, Collector, ScriptTotals
from hub.bench.script.vu import VU
from hub.bench.sizing import place, worker_indices
from hub.bench.target import ssl_context, with_default_path

__all__ = ["Engine", "error_key"]

#: Called with (error key, what to print) the first time this worker sees an error.
OnError = Callable[[str, str], None]


def error_key(exc: BaseException, filename: str) -> str:
    """What makes two errors the same: type, message, and the script line it came from."""
    if isinstance(exc, ConnectError):
        return f"ConnectError: {exc.reason}"  # the same, whatever the VU's URL
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == filename:
            where = f" ({filename.rsplit('/', 1)[-1]}:{frame.lineno})"
            break
    return f"{type(exc).__name__}: {str(exc)[:200]}{where}"


def describe(exc: BaseException) -> str:
    """An error as the script's author reads it: a failed connect in a line, anything else
    with its traceback from the script's frames on (not the engine's)."""
    if isinstance(exc, ConnectError):
        return f"{exc} "
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    lines = ["\nTraceback (most recent call last):\n", *traceback.format_list(frames)]
    return "".join([*lines, *traceback.format_exception_only(exc)])


class Engine:
    """One worker's share of the run: its VUs (ids ``worker, worker + procs, ...``), their
    connections, and what they counted."""

    def __init__(
        self,
        config: RunConfig,
        spec: ScriptSpec,
        worker: int,
        counters: Counters,
        latency_append: Callable[[int], None],
        on_error: OnError,
    ) -> None:
        self.config = config
        self.spec = spec
        self.worker = worker
        self.counters = counters
        self.latency_append = latency_append
        self.on_error = on_error
        self.user = load_script(spec.text, spec.filename)
        self.collector = Collector()
        self.vus: list[VU] = []
        self._tls: ssl.SSLContext | None = None
        self._header_lines = config.handshake.header_lines()

    def make_vus(self) -> list[VU]:
        rows = self.spec.data
        ids = worker_indices(self.spec.executor.vus, self.worker, self.config.procs)
        return [VU(self, self.collector, i, rows[i % len(rows)] if rows else {}) for i in ids]

    def open_sockets(self) -> int:
        """The VUs' connections open now (the live view's count)."""
        return sum(1 for vu in self.vus for conn in vu.conns if not conn.closed)

    async def run(self, t0: float) -> ScriptTotals:
        vus = self.vus = self.make_vus()
        executor, procs = self.spec.executor, self.config.procs
        try:
            dropped = await run_executor(executor, vus, self.iterate, t0, self.worker, procs)
        finally:
            for vu in vus:
                vu.close_all()
        self.collector.dropped += dropped
        return self.collector.totals(self.counters.sent, self.counters.frames)

    async def iterate(self, vu: VU) -> None:
        collector = self.collector
        vu.iteration += 1
        collector.vu_started()
        started = time.perf_counter()
        try:
            await self.user(vu)
        except asyncio.CancelledError:
            collector.interrupted += 1
            raise
        except Exception as exc:
            collector.failed += 1
            key = error_key(exc, self.spec.filename)
            text = f"VU {vu.id} iteration {vu.iteration}: {describe(exc)}(the first of its "
            text += "kind; the others are counted)"
            if collector.error(key, text):
                self.on_error(key, text)
            # A script that fails at once must not spin its VU: the next iteration waits a bit.
            await asyncio.sleep(0.01)
        else:
            collector.iterations += 1
            collector.add(ITERATION_DURATION, (time.perf_counter() - started) * 1000)
        finally:
            collector.vu_stopped()
            vu.close_all()

    def url_for(self, vu: VU, url: str | None, default_path: str) -> str:
        base = place(vu.id, self.config.urls, []).url
        if url is None:
            return with_default_path(base, default_path) if default_path else base
        if url.startswith("/"):
            parts = urlsplit(base)
            return f"{parts.scheme}://{parts.netloc}{url}"
        return url

    async def open(
        self,
        vu: VU,
        url: str | None,
        subprotocols: tuple[str, ...],
        headers: dict[str, str],
        protocol: str | None,
    ) -> Conn:
        codec, conn_class = codec_for(protocol or self.spec.protocol)
        target = self.url_for(vu, url, codec.default_path)
        offered = subprotocols or ((codec.subprotocol,) if codec.subprotocol else ())
        lines = self._header_lines + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        ).encode("latin-1")
        if offered:
            lines += f"Sec-WebSocket-Protocol: {', '.join(offered)}\r\n".encode("latin-1")
        if target.startswith("wss:") and self._tls is None:
            self._tls = ssl_context(self.config.handshake)
        connects = self.collector.connects
        try:
            sock = await open_socket(
                target, codec, self.counters, lines, self._tls, self.config.connect_timeout_s
            )
        except (OSError, TimeoutError, ValueError) as exc:
            connects["failed"] += 1
            self.collector.connect_errors[type(exc).__name__] += 1
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise ConnectError(f"connect {target}: {reason}", reason) from None
        connects["opened"] += 1
        return conn_class(sock, target, self.collector, self.latency_append)
