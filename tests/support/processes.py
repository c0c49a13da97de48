"""Real redis-server and ``hub serve`` processes for the tests, each stopped by its pid."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from hub.cli.embedded_redis import redis_server_argv
from support.waits import ROOT, clean_env, free_port, stop_process, t, wait_until

if TYPE_CHECKING:
    from support.hosts import Host


class RedisServer:
    """A real redis-server on a free loopback port; stop and start it again on the same port.

    With ``host`` (a lab host, support.hosts) it runs on that host, on its address.
    """

    def __init__(self, *extra: str, host: Host | None = None, port: int | None = None) -> None:
        """``extra`` arguments win over the defaults, e.g. "--appendonly", "yes"."""
        self.extra = extra
        self.host = host
        self.address = host.address if host else "127.0.0.1"
        self.port = port or (6379 if host else free_port())
        self.dir = tempfile.mkdtemp(prefix="hub-test-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.address}:{self.port}/0"

    def start(self) -> None:
        argv = redis_server_argv(dir=self.dir, port=self.port, extra=self.extra)
        if self.host is not None:
            argv = self.host.exec_argv([*argv, "--bind", self.address, "--protected-mode", "no"])
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        wait_until(self.ping, 10, f"redis-server on {self.address}:{self.port}")

    def ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.address, port=self.port, socket_timeout=2)

    def stop(self) -> None:
        self._kill()

    def pause(self) -> None:
        """SIGSTOP: every connection stays open and nothing is answered (a silent Redis)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    @classmethod
    @contextlib.contextmanager
    def running(cls, *extra: str) -> Iterator[RedisServer]:
        """A started redis-server, removed on exit."""
        server = cls(*extra)
        try:
            server.start()
            yield server
        finally:
            server.close()


class HubProcess:
    """A real ``hub serve`` process on a free loopback port, its output in a log file.

    ``env`` is added to this process's environment less its HUB_* settings (``clean_env``).
    ``port`` reuses a port (a hub restarted where its clients expect it); default: a free one.
    ``api`` also serves the HTTP API on a second free port. With ``log_dir`` the log is
    ``log_dir/hub-PORT.log`` and stays after ``stop``; otherwise it is a temporary file.
    With ``host`` (a lab host, support.hosts) the hub runs on that host and listens on its address.
    """

    def __init__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        api: bool = False,
        log_dir: Path | None = None,
        port: int | None = None,
        host: Host | None = None,
    ) -> None:
        self.host = host
        self.address = host.address if host else "127.0.0.1"
        self.port = port or (8000 if host else free_port())
        self.api_port = (8001 if host else free_port()) if api else 0
        api_args = ["--api-port", str(self.api_port)] if api else []
        if host is not None:
            api_args += ["--host", self.address]
            api_args += ["--api-host", self.address] if api else []
        self.args = ["--port", str(self.port), *api_args, *args]
        if log_dir is None:
            fd, name = tempfile.mkstemp(prefix="hub-test-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        else:
            log_dir.mkdir(parents=True, exist_ok=True)
            name = f"{host.name}-{self.port}" if host else str(self.port)
            self.log_path = log_dir / f"hub-{name}.log"
        self._keep_log = log_dir is not None
        self._log = self.log_path.open("wb")
        argv = [sys.executable, "-m", "hub", "serve", *self.args]
        self.proc = subprocess.Popen(
            host.exec_argv(argv) if host else argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=clean_env(**(env or {})),
            cwd=ROOT,
        )

    @property
    def base_url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def api_url(self) -> str:
        assert self.api_port, "started without api=True"
        return f"http://{self.address}:{self.api_port}"

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def is_serving(self) -> bool:
        try:
            return self.http("/healthz")[0] == 200
        except OSError:
            return False

    def is_ready(self) -> bool:
        """/readyz answers 200 (and, with ``api``, the API port accepts connections)."""
        try:
            ready = self.http("/readyz")[0] == 200
        except OSError:
            return False
        if ready and self.api_port:
            try:
                socket.create_connection((self.address, self.api_port), timeout=0.5).close()
            except OSError:
                return False
        return ready

    def _wait(self, check: Callable[[], bool], timeout: float, what: str) -> HubProcess:
        def done() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"hub exited with {self.proc.returncode}:\n{self.output()}")
            return check()

        wait_until(done, timeout, f"hub on port {self.port} {what}")
        return self

    def wait_ready(self, timeout: float = 15) -> HubProcess:
        """Wait (``timeout`` scaled) until :meth:`is_ready`; fail if the hub exits."""
        return self._wait(self.is_ready, timeout, "to be ready")

    def wait_serving(self, timeout: float = 15) -> HubProcess:
        """Wait (``timeout`` scaled) until /healthz answers 200; fail if the hub exits."""
        return self._wait(self.is_serving, timeout, "to answer /healthz")

    def url(self, channel: str = "") -> str:
        return f"ws://{self.address}:{self.port}/{channel}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> int | None:
        """Stop the hub (SIGTERM, then SIGKILL); its exit status."""
        stop_process(self.proc, t(15))
        if not self._log.closed:
            self._log.close()
            if not self._keep_log:
                self.log_path.unlink(missing_ok=True)
        return self.proc.returncode

    def __enter__(self) -> HubProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_python(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` from the repository root, with a clean environment (no HUB_*), its
    output captured as text; ``timeout`` is scaled."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=t(timeout),
        cwd=ROOT,
        env=clean_env(),
    )
