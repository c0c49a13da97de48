"""Helpers for the deploy tests: the parsed compose file, processes, waits.

The topology tests run the compose file's services as local processes: redis-server
with the compose command, `hub serve` with each hub service's environment (only the
host, port and Redis URL moved to loopback), and Debian's haproxy or nginx in front.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from hub.cli.embedded_redis import redis_answers_ping
from support.waits import ROOT, clean_env, free_port, t, wait_until

REPO = ROOT
COMPOSE_FILE = REPO / "docker-compose.yml"
DEPLOY = REPO / "deploy"


def docker_compose() -> str | None:
    return shutil.which("docker-compose")


def compose_config(
    path: Path = COMPOSE_FILE, *profiles: str, quiet: bool = False
) -> subprocess.CompletedProcess[str]:
    """`docker-compose -f PATH [--profile P] config [-q]`: Compose's parser and validator."""
    exe = docker_compose()
    assert exe, "docker-compose (Debian's v1) is needed: apt-get install docker-compose"
    return subprocess.run(
        [
            exe,
            "--project-directory",
            str(REPO),
            "-f",
            str(path),
            *(arg for p in profiles for arg in ("--profile", p)),
            "config",
            *(["-q"] if quiet else []),
        ],
        capture_output=True,
        text=True,
        timeout=t(60),
        check=False,
        cwd=REPO,
    )


def load_compose() -> dict[str, Any]:
    """The compose file as Compose resolves it (anchors merged, values normalised)."""
    result = compose_config(COMPOSE_FILE, "nginx")
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(result.stdout)
    assert isinstance(data, dict)
    return data


def env_dict(environment: Mapping[str, Any] | list[str] | None) -> dict[str, str]:
    """A service's `environment` (mapping or KEY=VALUE list) as a str -> str dict."""
    if environment is None:
        return {}
    if isinstance(environment, list):
        out = {}
        for item in environment:
            key, _, value = item.partition("=")
            out[key] = value
        return out
    return {k: "" if v is None else str(v) for k, v in environment.items()}


def hub_services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The services built from deploy/Dockerfile, by name (those of the default profile:
    the sentinel profile's hub is started by its own test)."""
    out = {}
    for name, svc in compose["services"].items():
        if svc.get("profiles"):
            continue
        build = svc.get("build") or {}
        if isinstance(build, dict) and str(build.get("dockerfile", "")).endswith(
            "deploy/Dockerfile"
        ):
            out[name] = svc
    return dict(sorted(out.items()))


def command_list(command: Any) -> list[str]:
    if command is None:
        return []
    if isinstance(command, str):
        import shlex

        return shlex.split(command)
    return [str(c) for c in command]


def http_status(port: int, path: str, host: str = "127.0.0.1") -> int | None:
    """The status of GET http://host:port/path, or None when it cannot connect."""
    conn = http.client.HTTPConnection(host, port, timeout=t(2))
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


class Proc:
    """A child process in its own session, logged to a file, stopped by its pid."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path, **kw: Any):
        self.name = name
        self.argv = argv
        self.log = log
        #: A hub's HTTP API port on loopback (0: none).
        self.api_port = 0
        self._log_file = log.open("wb")
        self.popen = subprocess.Popen(
            argv,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **kw,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")[-4000:]

    def _signal_group(self, sig: int) -> None:
        # The group was created for this child (start_new_session), so its id is
        # the child's pid: this reaches the hub's worker processes too, nothing else.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown code runs."""
        self._signal_group(signal.SIGKILL)
        self.popen.wait(timeout=t(10))

    def terminate(self) -> None:
        """SIGTERM, without waiting (a hub then drains for its HUB_DRAIN_S)."""
        if self.popen.poll() is None:
            self._signal_group(signal.SIGTERM)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.terminate()
            try:
                self.popen.wait(timeout=t(10))
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.popen.wait(timeout=t(10))
        else:
            self._signal_group(signal.SIGKILL)  # strays of a dead leader, if any
        self._log_file.close()


@contextlib.contextmanager
def processes() -> Iterator[list[Proc]]:
    """A list to append started processes to; all are stopped on exit, newest first, and
    all told at once (hubs drain side by side: compose's HUB_DRAIN_S each)."""
    procs: list[Proc] = []
    try:
        yield procs
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            proc.stop()


def start_redis(compose: Mapping[str, Any], tmp: Path, procs: list[Proc]) -> int:
    """redis-server with the compose `redis` service's command, on a loopback port."""
    port = free_port()
    argv = command_list(compose["services"]["redis"].get("command"))
    assert argv and argv[0] == "redis-server", argv
    exe = shutil.which("redis-server")
    assert exe, "redis-server is needed (apt-get install redis-server)"
    argv = [exe, *argv[1:], "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp)]
    proc = Proc("redis", argv, clean_env(), tmp / "redis.log")
    procs.append(proc)

    def up() -> bool:
        assert proc.alive(), proc.output()
        return redis_answers_ping(("127.0.0.1", port), t(1))

    wait_until(up, 10, "redis-server to answer PING")
    return port


def start_hubs(
    compose: Mapping[str, Any],
    redis_port: int,
    tmp: Path,
    procs: list[Proc],
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, tuple[Proc, int]]:
    """One `hub serve` per hub service, configured from its compose environment.

    Only HUB_HOST, HUB_PORT, HUB_REDIS_URL (and HUB_API_HOST, HUB_API_PORT) are overridden
    (loopback, a free port, the test's redis-server); the rest is exactly the service's
    environment. The command is the image's ENTRYPOINT (`hub serve`) plus the service's
    `command`. ``extra_env`` adds settings a test needs (history, say).
    """
    hubs: dict[str, tuple[Proc, int]] = {}
    for name, svc in hub_services(compose).items():
        port = free_port()
        env = clean_env(**env_dict(svc.get("environment")))
        env.update(
            HUB_HOST="127.0.0.1",
            HUB_PORT=str(port),
            HUB_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            **(extra_env or {}),
        )
        api_port = free_port() if env.get("HUB_API_PORT", "0") != "0" else 0
        if api_port:
            env.update(HUB_API_HOST="127.0.0.1", HUB_API_PORT=str(api_port))
        argv = [sys.executable, "-m", "hub", "serve", *command_list(svc.get("command"))]
        proc = Proc(name, argv, env, tmp / f"{name}.log", cwd=REPO)
        proc.api_port = api_port
        procs.append(proc)
        hubs[name] = (proc, port)
    for name, (proc, port) in hubs.items():

        def ready(proc: Proc = proc, port: int = port) -> bool:
            assert proc.alive(), f"{proc.name} exited:\n{proc.output()}"
            if proc.api_port and http_status(proc.api_port, "/sse/") is None:
                return False  # the API listens a moment after /readyz answers
            return http_status(port, "/readyz") == 200

        wait_until(ready, 20, f"{name} /readyz to answer 200")
    return hubs


def service_port(svc: Mapping[str, Any]) -> int:
    return int(env_dict(svc.get("environment")).get("HUB_PORT", "8765"))


def lb_env(
    compose: Mapping[str, Any], lb_service: str, hubs: Mapping[str, tuple[Proc, int]], port: int
) -> dict[str, str]:
    """The LB service's environment with each `hubN:PORT` moved to its loopback port (and
    each `hubN:API_PORT` to its loopback API port)."""
    services = hub_services(compose)
    env = env_dict(compose["services"][lb_service].get("environment"))
    seen = []
    for key, value in env.items():
        host, _, svc_port = value.rpartition(":")
        if host in services:
            proc, hub_port = hubs[host]
            api_port = env_dict(services[host].get("environment")).get("HUB_API_PORT")
            if svc_port == api_port:
                env[key] = f"127.0.0.1:{proc.api_port if proc is not None else free_port()}"
                continue
            assert int(svc_port) == service_port(services[host]), (key, value)
            env[key] = f"127.0.0.1:{hub_port}"
            seen.append(host)
    assert sorted(seen) == sorted(services), f"{lb_service} must address each hub once: {env}"
    assert "HUB_LB_BIND" in env, env
    env["HUB_LB_BIND"] = f"127.0.0.1:{port}"
    return env


NGINX_SERVER_RE = re.compile(r"^(\s*server\s+)([A-Za-z0-9_.-]+):(\d+)(\b.*;)$", re.M)


def render_nginx(
    conf: str,
    compose: Mapping[str, Any],
    hubs: Mapping[str, tuple[Proc, int]],
    port: int,
    prefix: Path,
) -> str:
    """deploy/nginx.conf with loopback ports and paths under `prefix`.

    Replaces the `server hubN:PORT` upstream lines, the `listen` port, `pid`, the logs,
    and adds temp paths; each substitution must match the committed file.
    """
    services = hub_services(compose)
    seen = []

    def upstream(m: re.Match[str]) -> str:
        host, svc_port = m.group(2), int(m.group(3))
        assert host in services, f"nginx upstream {host} is not a compose hub service"
        api_port = env_dict(services[host].get("environment")).get("HUB_API_PORT")
        if str(svc_port) == api_port:  # the hub's API listener (SSE, clients' publishes)
            proc = hubs[host][0]
            port = proc.api_port if proc is not None and proc.api_port else free_port()
            return f"{m.group(1)}127.0.0.1:{port}{m.group(4)}"
        assert svc_port == service_port(services[host]), m.group(0)
        seen.append(host)
        return f"{m.group(1)}127.0.0.1:{hubs[host][1]}{m.group(4)}"

    out = NGINX_SERVER_RE.sub(upstream, conf)
    assert sorted(seen) == sorted(services), f"nginx upstreams {seen} != {sorted(services)}"
    subs = [
        (r"^(\s*listen\s+)\d+;", rf"\g<1>127.0.0.1:{port};"),
        (r"^pid\s+\S+;", f"pid {prefix}/nginx.pid;"),
        (r"^error_log\s+\S+", f"error_log {prefix}/error.log"),
        (r"^(\s*access_log\s+)\S+;", rf"\g<1>{prefix}/access.log;"),
        (r"^worker_processes\s+\S+;", "worker_processes 1;"),
        (
            r"^http \{$",
            "http {\n"
            f"    client_body_temp_path {prefix}/client_body;\n"
            f"    proxy_temp_path {prefix}/proxy;\n"
            f"    fastcgi_temp_path {prefix}/fastcgi;\n"
            f"    uwsgi_temp_path {prefix}/uwsgi;\n"
            f"    scgi_temp_path {prefix}/scgi;",
        ),
    ]
    for pattern, repl in subs:
        out, n = re.subn(pattern, repl, out, count=1, flags=re.M)
        assert n == 1, f"deploy/nginx.conf has no line matching {pattern!r}"
    return out
