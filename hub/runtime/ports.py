"""The listening ports of ``hub serve``: claimed before anything else starts.

hub's own listeners always set SO_REUSEPORT, so that the workers of one hub share its port. That
alone would let a second hub (or any program that sets the option) join a port silently, so
before it connects to Redis, starts a redis-server or spawns a worker, ``hub serve`` probes each
port with a bind of its own *without* SO_REUSEPORT: on Linux that bind fails with EADDRINUSE
against any socket bound there, listening or not, whether or not it set SO_REUSEPORT. The probe
is released at once; the hub then holds a lock (an abstract unix socket named after the
address) until it exits, so that a second hub that probes while this one's workers are still
binding, or all restarting, is refused too. A bind that still fails in a worker (a foreign
program took the port in between) is reported the same way.

With ``--reuse-port`` the probe sets SO_REUSEPORT itself: it fails only against a listener that
does not share its port, and the hub joins the others on it.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import sys
from dataclasses import dataclass
from types import TracebackType

from hub.core.config import Settings

__all__ = [
    "EXIT_CANNOT_LISTEN",
    "CannotListen",
    "Listener",
    "PortClaim",
    "claim_ports",
    "listeners",
]

#: The exit status of ``hub serve`` (and of a worker) that cannot listen: that of bad settings.
EXIT_CANNOT_LISTEN = 2


@dataclass(frozen=True)
class Listener:
    """One listening port of a hub: which one (for messages), and where."""

    what: str
    flag: str
    host: str
    port: int


class CannotListen(Exception):
    """A listener's port cannot be bound; ``str()`` is the one line that says why."""

    def __init__(self, listener: Listener, error: OSError, *, reuse_port: bool) -> None:
        super().__init__(listener, error)
        self.listener = listener
        self.error = error
        self.reuse_port = reuse_port

    def __str__(self) -> str:
        where = self.listener
        name = f"{where.what} port {where.port} ({where.flag}) on {where.host or '*'}"
        if self.error.errno == errno.EADDRINUSE and self.reuse_port:
            return (
                f"{name} is in use by a process that does not share it (SO_REUSEPORT), so "
                "--reuse-port cannot join it: stop that process or choose another port"
            )
        if self.error.errno == errno.EADDRINUSE:
            return (
                f"{name} is already in use by another process: stop it, choose another port, "
                "or pass --reuse-port (HUB_REUSE_PORT=1) to share the port with it"
            )
        reason = self.error.strerror or str(self.error)
        return f"cannot listen on {name}: {reason}"


def listeners(settings: Settings) -> list[Listener]:
    """The ports ``hub serve`` will listen on: the WebSocket port, and the API's if it is on."""
    found = [Listener("WebSocket", "--port", settings.host, settings.port)]
    if settings.api_port:
        found.append(Listener("HTTP API", "--api-port", settings.api_host, settings.api_port))
    return found


def _addresses(listener: Listener) -> list[tuple[int, tuple[str, int]]]:
    """Every (family, address) the listener binds, as asyncio's create_server resolves them."""
    infos = socket.getaddrinfo(
        listener.host or None,
        listener.port,
        family=socket.AF_UNSPEC,
        type=socket.SOCK_STREAM,
        flags=socket.AI_PASSIVE,
    )
    found: list[tuple[int, tuple[str, int]]] = []
    for family, _, _, _, address in infos:
        item = (int(family), (str(address[0]), int(address[1])))
        if family in (socket.AF_INET, socket.AF_INET6) and item not in found:
            found.append(item)
    return found


def _probe(family: int, address: tuple[str, int], *, reuse_port: bool) -> None:
    """Bind (and release) the address; raise OSError if someone holds it."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # A connection of an earlier run still in TIME_WAIT does not hold the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:  # as asyncio binds it: IPv6 only
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)


def _lock(family: int, address: tuple[str, int]) -> socket.socket | None:
    """An abstract unix socket named after the address, held while this hub runs (Linux);
    raise OSError(EADDRINUSE) if another hub holds it."""
    if not sys.platform.startswith("linux"):
        return None
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lock.bind(f"\0hub-listen:{family}:{address[0]}:{address[1]}")
    except OSError:
        lock.close()
        raise
    return lock


class PortClaim(contextlib.AbstractContextManager["PortClaim"]):
    """The locks of a hub's ports, released by ``close`` (or at exit, even a SIGKILLed one)."""

    def __init__(self, locks: list[socket.socket]) -> None:
        self._locks = locks

    def close(self) -> None:
        for lock in self._locks:
            lock.close()
        self._locks = []

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def claim_ports(settings: Settings) -> PortClaim:
    """Check that every port of ``settings`` is free (or, with --reuse-port, shared), and lock
    it for this hub; raise CannotListen naming the first that is not. Port 0 (any free port)
    is not checked."""
    locks: list[socket.socket] = []
    try:
        for listener in listeners(settings):
            if not listener.port:
                continue
            try:
                for family, address in _addresses(listener):
                    _probe(family, address, reuse_port=settings.reuse_port)
                    lock = None if settings.reuse_port else _lock(family, address)
                    if lock is not None:
                        locks.append(lock)
            except OSError as exc:
                raise CannotListen(listener, exc, reuse_port=settings.reuse_port) from None
    except BaseException:
        for lock in locks:
            lock.close()
        raise
    return PortClaim(locks)
