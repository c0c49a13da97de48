"""``hub bench agent``: a load host that runs a controller's share of the workers.

It listens on TCP, proves the token both ways (``handshake.py``), and then runs the workers the
controller asks for, with the whole run's config, as a local coordinator would
(``pool.LocalPool``): commands come down the connection and go to every worker, the workers'
events go up it. The worker's entry point travels by name (``hub.bench....:function``), so the
agent runs whatever the controller's coordinator would have run here, a script's workers
included, with no code of its own for them.

One run at a time: a second controller is refused while one runs (once it has proved the
token: a connection that cannot holds nothing). The workers stop when the
controller says so, when its connection closes, or when it has been silent past
:data:`SILENCE_S` (it beats every second): a lost controller leaves no load running. A worker
dies with the agent (PR_SET_PDEATHSIG), so a killed agent leaves none either.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib
import os
import queue
import signal
import socket
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from hub.bench.agents.clock import shift
from hub.bench.agents.codec import CodecError, decode, encode
from hub.bench.agents.frames import Channel, ChannelClosed
from hub.bench.agents.handshake import HandshakeError, agent_side
from hub.bench.config import RunConfig
from hub.bench.pool import BenchError, LocalPool, WorkerTarget

__all__ = ["BEAT_S", "SILENCE_S", "serve"]

#: Either end sends a beat when it has sent nothing for this long.
BEAT_S = 1.0
#: A peer silent this long is gone (a cut network sends no FIN).
SILENCE_S = 5.0
_PR_SET_PDEATHSIG = 1


def log(text: str) -> None:
    print(f"hub bench agent: {text}", file=sys.stderr, flush=True)


def serve(host: str, port: int, token: str) -> None:
    """Listen on ``host:port`` (port 0: any free one) and serve controllers until killed.
    The first line on stdout says where it listens."""
    listener = socket.create_server((host, port))
    bound = listener.getsockname()
    print(f"hub bench agent: listening on {bound[0]}:{bound[1]}", flush=True)
    busy = threading.Lock()
    while True:
        conn, peer = listener.accept()
        threading.Thread(
            target=_session, args=(conn, f"{peer[0]}:{peer[1]}", token, busy), daemon=True
        ).start()


def _session(conn: socket.socket, peer: str, token: str, busy: threading.Lock) -> None:
    channel = Channel(conn, f"controller {peer}")
    claimed = False

    def claim() -> bool:
        nonlocal claimed
        claimed = busy.acquire(blocking=False)
        return claimed

    try:
        run = agent_side(channel, token, claim)
        if run.get("type") != "run":
            raise HandshakeError(f"expected the run, got {run.get('type')!r}")
        _run(channel, peer, run)
    except HandshakeError as exc:
        log(f"refused the controller at {peer}: {exc}")
    except CodecError as exc:  # a run this agent cannot make: the controller is told why
        log(f"controller {peer}: refused the run: {exc}")
        try:
            channel.send({"type": "error", "error": f"refused the run: {exc}"})
        except ChannelClosed:
            pass
    except ChannelClosed as exc:
        log(f"controller {peer}: {exc}")
    finally:
        channel.close()
        if claimed:
            busy.release()


def _run(channel: Channel, peer: str, run: dict[str, Any]) -> None:
    """Run the workers ``run`` names until the controller is done with them."""
    config = decode(run["config"])
    if not isinstance(config, RunConfig):
        raise CodecError("the run's config is not a RunConfig")
    numbers = [int(n) for n in run["workers"]]
    offset_ns = int(run["offset_ns"])
    worker_target(str(run["target"]))  # refused here, before any worker starts
    entry = functools.partial(agent_worker, str(run["target"]), os.getpid())
    pool = LocalPool(config, entry, numbers)
    log(f"controller {peer}: workers {numbers} of {config.procs} ({config.scenario})")
    stop = threading.Event()
    pump = threading.Thread(target=_pump, args=(channel, pool, offset_ns, stop), daemon=True)
    pool.start()
    pump.start()
    try:
        while True:
            frame = channel.recv(SILENCE_S)
            if frame["type"] == "command":
                pool.send_all(shift(decode(frame["command"]), offset_ns))
            elif frame["type"] == "stop":
                break
    finally:
        stop.set()
        pool.shutdown()
        pump.join(5.0)
        log(f"controller {peer}: workers stopped")


def _pump(channel: Channel, pool: LocalPool, offset_ns: int, stop: threading.Event) -> None:
    """The workers' events up the connection, on the controller's clock; a beat when idle."""
    last = time.monotonic()
    try:
        while not stop.is_set():
            try:
                event = pool.get(0.25)
            except queue.Empty:
                try:
                    pool.check_alive()
                except BenchError as exc:
                    channel.send({"type": "error", "error": str(exc)})
                    return
            else:
                channel.send({"type": "event", "event": encode(shift(event, -offset_ns))})
                last = time.monotonic()
            if time.monotonic() - last >= BEAT_S:
                channel.send({"type": "beat"})
                last = time.monotonic()
    except ChannelClosed:
        return  # the command loop sees it too, and stops the workers


def worker_target(name: str) -> WorkerTarget:
    """The worker entry point ``module:function`` of a ``hub.bench`` module."""
    module_name, _, attr = name.partition(":")
    if not module_name.startswith("hub.bench.") or not attr:
        raise CodecError(f"{name!r} is not a hub.bench worker entry point")
    target = getattr(importlib.import_module(module_name), attr, None)
    if not callable(target):
        raise CodecError(f"{name!r} is not a function")
    return target  # type: ignore[no-any-return]


def agent_worker(
    target: str, parent: int, config: RunConfig, number: int, commands: Connection, events: Any
) -> None:
    """A worker process of the agent: it dies with the agent, then runs ``target``."""
    name = ctypes.util.find_library("c")
    if name is not None:
        try:
            ctypes.CDLL(name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the agent died while this process was starting
        os._exit(1)
    worker_target(target)(config, number, commands, events)
