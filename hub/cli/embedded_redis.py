"""The redis-server that a multi-worker hub starts and owns when no --redis URL is given."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from hub.cli.orphans import die_with_parent, make_owned_dir

__all__ = [
    "PUBSUB_BUFFER_LIMIT",
    "EmbeddedRedis",
    "RedisNotInstalled",
    "find_redis_server",
    "redis_answers_ping",
    "redis_server_argv",
]

logger = logging.getLogger(__name__)

#: Redis drops a pub/sub client whose output buffer passes this (default 32mb 8mb 60). The hub
#: reads ahead of Redis, but a burst to a busy process can still pass 32 MB; a dropped
#: subscriber loses every message until it resubscribes, so the owned server allows more.
PUBSUB_BUFFER_LIMIT = "pubsub 256mb 128mb 60"


class RedisNotInstalled(RuntimeError):
    pass


def find_redis_server() -> str | None:
    return shutil.which("redis-server")


def redis_server_argv(
    *,
    dir: str,
    port: int = 0,
    unix_socket: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The redis-server command line that hub runs, for the embedded server, the tests and the
    benchmarks alike: no persistence, hub's pub/sub buffer limit, quiet. ``extra`` arguments
    come last, so they win (``"--appendonly", "yes"``)."""
    exe = find_redis_server()
    if exe is None:
        raise RedisNotInstalled(
            "redis-server is not installed (apt-get install redis-server, or run "
            "./scripts/test.sh, which installs it)"
        )
    argv = [exe, "--port", str(port), "--dir", dir, "--save", "", "--appendonly", "no"]
    argv += ["--client-output-buffer-limit", PUBSUB_BUFFER_LIMIT, "--loglevel", "warning"]
    if port:
        argv += ["--bind", "127.0.0.1"]
    if unix_socket is not None:
        argv += ["--unixsocket", unix_socket, "--unixsocketperm", "700"]
    return [*argv, *extra]


def redis_answers_ping(address: str | Path | tuple[str, int], timeout_s: float = 1.0) -> bool:
    """Whether a redis-server answers PING at ``address``: a unix socket path, or (host, port)."""
    try:
        if isinstance(address, tuple):
            sock = socket.create_connection(address, timeout_s)
        else:
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(timeout_s)
            sock.connect(str(address))
        with sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    """A private redis-server on a unix socket in a temporary directory, removed at exit."""

    def __init__(self) -> None:
        if find_redis_server() is None:
            raise RedisNotInstalled(
                "several workers need Redis to reach each other: pass --redis URL "
                "(or HUB_REDIS_URL), or install redis-server (apt-get install redis-server)"
            )
        self._dir = make_owned_dir("hub-redis-")
        self.socket_path = self._dir / "redis.sock"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout_s: float = 10.0) -> None:
        self._proc = subprocess.Popen(
            redis_server_argv(
                dir=str(self._dir),
                unix_socket=str(self.socket_path),
                extra=("--maxclients", "10000"),
            ),
            stdin=subprocess.DEVNULL,
            # It dies with the supervisor, even a SIGKILLed one (no orphaned redis-server).
            preexec_fn=die_with_parent,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._proc.returncode}")
            if redis_answers_ping(self.socket_path):
                logger.info(
                    "embedded redis-server %d at %s (publish into it: hub publish CHANNEL "
                    "MESSAGE --redis %s)",
                    self._proc.pid,
                    self.url,
                    self.url,
                )
                return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on {self.socket_path}")

    def restart_if_dead(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            logger.error(
                "embedded redis-server exited with %s; restarting it", self._proc.returncode
            )
            self.socket_path.unlink(missing_ok=True)
            self.start()

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)
